"""Stop strings over streamed text: matched text is cut, and a tail that could still grow
into a stop string is held back until it is decided."""

from __future__ import annotations


class StopChecker:
    def __init__(self, stop: list[str], include_stop_str_in_output: bool = False):
        self.stop = stop
        self.include = include_stop_str_in_output
        self.text = ""  # all text decoded so far
        self.emitted = 0  # chars of self.text already handed out

    def append(self, new_text: str) -> tuple[str, str | None]:
        """Add decoded text; return (text safe to emit now, the stop string if one matched)."""
        search_from = max(0, len(self.text) - max((len(s) for s in self.stop), default=0) + 1)
        self.text += new_text
        matches = [(i, n, s) for n, s in enumerate(self.stop) if (i := self.text.find(s, search_from)) >= 0]
        if matches:  # overlapping stops: the one that starts first in the text, then the first listed
            i, _, s = min(matches)
            end = i + len(s) if self.include else i
            self.text = self.text[:end]
            return self._emit(len(self.text)), s
        return self._emit(len(self.text) - self._held_back()), None

    def flush(self) -> str:
        return self._emit(len(self.text))

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of some stop string."""
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), longest, -1):
                if self.text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _emit(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        out = self.text[self.emitted:upto]
        self.emitted = upto
        return out
