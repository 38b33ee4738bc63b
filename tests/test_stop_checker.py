from jax_engine.stop_checker import StopChecker


def feed(checker, pieces):
    emitted, stop = [], None
    for piece in pieces:
        text, stop = checker.append(piece)
        emitted.append(text)
        if stop:
            break
    return emitted, stop


def test_stop_string_split_across_pieces_is_cut_and_never_emitted():
    emitted, stop = feed(StopChecker(["STOP"]), ["Hello S", "TO", "P more"])
    assert stop == "STOP"
    assert "".join(emitted) == "Hello "
    assert emitted[0] == "Hello "  # "S" held back: it could start "STOP"


def test_held_back_text_is_released_when_it_cannot_be_a_stop():
    checker = StopChecker(["STOP"])
    emitted, stop = feed(checker, ["Hello S", "ure"])
    assert stop is None and "".join(emitted) == "Hello Sure"


def test_include_stop_str_in_output_keeps_it():
    emitted, stop = feed(StopChecker(["\n\n"], include_stop_str_in_output=True), ["a\n", "\nb"])
    assert stop == "\n\n" and "".join(emitted) == "a\n\n"


def test_first_of_several_stop_strings_wins_and_flush_returns_the_rest():
    checker = StopChecker(["xyz", "ab"])
    emitted, stop = feed(checker, ["12a", "b3"])
    assert stop == "ab" and "".join(emitted) == "12"
    checker = StopChecker(["xyz"])
    emitted, _ = feed(checker, ["12x"])
    assert "".join(emitted) + checker.flush() == "12x"


def test_overlapping_stops_cut_at_the_earliest_match_whatever_their_order():
    emitted, stop = feed(StopChecker(["world", "lo w"]), ["hello world"])
    assert stop == "lo w" and "".join(emitted) == "hel"
    emitted, stop = feed(StopChecker(["bcd", "abcde"], include_stop_str_in_output=True), ["xab", "cde"])
    assert stop == "abcde" and "".join(emitted) == "xabcde"  # the one that starts first, kept whole
