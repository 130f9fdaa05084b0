import pytest

from linly_push.script import Pause, Sentence, detect_lang, parse


def texts(script: str, max_chars: int = 160) -> list[str]:
    return [i.text if isinstance(i, Sentence) else "|" for i in parse(script, max_chars)]


def test_english_sentences_keep_their_punctuation():
    assert texts("Hello there. How are you?! I'm fine... Thanks!") == [
        "Hello there.", "How are you?!", "I'm fine...", "Thanks!",
    ]


def test_chinese_sentences():
    assert texts("今天天气很好。我们去公园吧！好不好？好；走吧") == [
        "今天天气很好。", "我们去公园吧！", "好不好？", "好；", "走吧",
    ]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert texts("他说：“你好。”然后走了。") == ["他说：“你好。”", "然后走了。"]
    assert texts('She said "stop." Then (quietly.) he left.') == ['She said "stop."', "Then (quietly.)", "he left."]


def test_decimals_and_abbreviations_do_not_end_sentences():
    assert texts("Pi is 3.14 today. Mr. Smith and Dr. Who, e.g. in the U.S. are here. J. K. Rowling wrote.") == [
        "Pi is 3.14 today.",
        "Mr. Smith and Dr. Who, e.g. in the U.S. are here.",
        "J. K. Rowling wrote.",
    ]


def test_mixed_chinese_and_english():
    items = parse("我喜欢Python编程。It is fun. 真的！")
    assert items == [Sentence("我喜欢Python编程。", "zh"), Sentence("It is fun.", "en"), Sentence("真的！", "zh")]


def test_blank_lines_give_one_pause_between_paragraphs():
    script = "\n\n  \nFirst one.\nStill first.\n\n \n\t\nSecond.\n\n\n...\n\n\nThird.\n\n"
    assert texts(script) == ["First one.", "Still first.", "|", "Second.", "|", "Third."]
    assert parse("A.\n\nB.")[1] == Pause("paragraph")


def test_line_breaks_join_chinese_without_a_space_and_english_with_one():
    assert texts("第一行\n第二行。Windows\r\nline  breaks\tare   spaces.") == [
        "第一行第二行。", "Windows line breaks are spaces.",
    ]


def test_text_without_punctuation_is_split_by_length():
    words = " ".join(f"word{i}" for i in range(60))
    pieces = texts(words, max_chars=50)
    assert len(pieces) > 1 and all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == words  # cut only at spaces
    hanzi = "字" * 130
    assert texts(hanzi, max_chars=50) == ["字" * 50, "字" * 50, "字" * 30]


def test_long_sentences_are_cut_at_commas_before_spaces():
    sentence = "This first clause runs on for a while, and the second clause does too, until it ends."
    assert texts(sentence, max_chars=50) == ["This first clause runs on for a while,", "and the second clause does too, until it ends."]
    chinese = "我们今天要讨论的问题非常重要，" * 4 + "谢谢。"
    pieces = texts(chinese, max_chars=40)
    assert all(len(p) <= 40 for p in pieces) and all(p.endswith(("，", "。")) for p in pieces)
    assert "".join(pieces) == chinese


def test_numbers_with_commas_are_not_cut_there():
    assert texts("It cost 1,000,000 dollars and 2,500 cents in the end", max_chars=30) == [
        "It cost 1,000,000 dollars and", "2,500 cents in the end",
    ]


@pytest.mark.parametrize("script", ["", "   \n\n  ", "...", "—", "!!! ??", "。。。"])
def test_nothing_to_say_gives_nothing(script: str):
    assert parse(script) == []


def test_silent_pieces_are_dropped_between_sentences():
    assert texts("Hello. ... World. —") == ["Hello.", "World."]


def test_detect_lang():
    assert detect_lang("Hello, world") == "en"
    assert detect_lang("Hello 世界") == "zh"
    assert detect_lang("１２３，ＡＢＣ") == "en"  # full-width Latin and digits are not Chinese


def test_stream_yields_each_line_as_it_arrives():
    from linly_push.script import stream

    def lines():
        yield "Hello there. How are you?\n"
        yield "\n"
        yield "\n"
        yield "你好。\n"
        raise AssertionError("read past what was needed")

    items = stream(lines())
    assert next(items) == Sentence("Hello there.", "en")
    assert next(items) == Sentence("How are you?", "en")
    assert next(items) == Pause("paragraph")  # two blank lines: one pause, and only before more text
    assert next(items) == Sentence("你好。", "zh")


def test_long_texts_cut_and_end_sentences_as_short_ones_do():
    # Cutting and finding the word before a dot used to start from the beginning each time: a
    # 16 MiB script without stops took hours. Their results must not have changed.
    words = " ".join(["word"] * 20_000)
    pieces = texts(words, max_chars=50)
    assert all(len(p) <= 50 for p in pieces) and " ".join(pieces) == words
    assert texts("中文.很好." * 1000) == ["中文.", "很好."] * 1000  # ASCII full stops, no spaces
    assert texts("(" * 5 + "Mr. Smith came. " + "x" * 40 + "Mr. Jones left.") == [
        "(((((Mr. Smith came.", "x" * 40 + "Mr.", "Jones left."]
