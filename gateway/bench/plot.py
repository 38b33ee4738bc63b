"""`bench serve --plot`: throughput and latency percentiles against concurrency, as a PNG."""

from __future__ import annotations

from collections.abc import Sequence


class PlotUnavailable(RuntimeError):
    pass


def plot_levels(records: Sequence[dict], path: str, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullLocator
    except ImportError as e:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'cortexstream[plot]'") from e
    concurrency = [r["concurrency"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(concurrency, [r["output_throughput"] for r in records], marker="o")
    left.set(xlabel="concurrency", ylabel="output tokens/s", title="Output throughput", xscale="log")
    for key, style in (("median_ttft_ms", "-o"), ("p99_ttft_ms", "--o"), ("median_itl_ms", "-s"),
                       ("p99_itl_ms", "--s")):
        right.plot(concurrency, [r[key] for r in records], style, label=key.removesuffix("_ms").replace("_", " "))
    right.set(xlabel="concurrency", ylabel="ms", title="Latency", xscale="log", yscale="log")
    right.legend()
    for ax in (left, right):
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(concurrency, [str(c) for c in concurrency])
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
