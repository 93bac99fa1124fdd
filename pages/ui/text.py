"""User-written text inside Markdown: shown as written, never as links, images or styling.

Streamlit renders Markdown in st.markdown, st.write, st.caption, the notice boxes,
titles and expander labels. A change note of ``[click](http://evil.example)`` would show
a reviewer a link, ``![x](http://evil.example/t.png)`` would load a tracking image, a
bare ``http://`` or ``www.`` address becomes a link, ``:red[...]``, ``:material/...:``
or ``$...$`` restyle the page, and a ``#`` or ``-`` at the start of a line makes a
heading or a list.

``literal`` escapes what can start such a construct and nothing else, so ordinary
punctuation (``'``, ``:``, ``-`` inside a line, ``snake_case``) stays as it is in the
Markdown source. Bare addresses get a zero-width space after the scheme or ``www``:
Streamlit's GitHub-flavoured Markdown finds them in the text after escapes are resolved,
so a backslash alone would not stop them; the reader sees the same characters.
"""

from __future__ import annotations

import re

_ZERO_WIDTH_SPACE = "\u200b"
# Always special: escapes, code, emphasis, links and images, HTML and autolinks,
# strikethrough, tables.
_ALWAYS = re.compile(r"([\\`*\[\]<~|])")
# Emphasis with '_' needs it at a word's edge; inside snake_case it is a letter.
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# ':red[', ':material/icon:', ':smile:': a colon glued to a word.
_DIRECTIVE_COLON = re.compile(r":(?=[A-Za-z/])")
# At the start of a line: headings, quotes, lists, setext underlines.
_LINE_START = re.compile(r"^([ \t]*)([#>+\-=])", re.MULTILINE)
_LINE_START_NUMBER = re.compile(r"^([ \t]*\d+)([.)])", re.MULTILINE)  # '1.' starts a numbered list
_BARE_ADDRESS = re.compile(r"(?i)(://|www(?=\.))")


def literal(text: object) -> str:
    """Markdown source that displays ``text`` exactly as written, line breaks included."""
    source = _ALWAYS.sub(r"\\\1", str(text))
    if source.count("$") > 1:  # '$...$' is LaTeX; a lone '$5' is just money
        source = source.replace("$", "\\$")
    source = _EDGE_UNDERSCORE.sub(r"\\_", source)
    source = _BARE_ADDRESS.sub(lambda m: m.group(1)[:1] + _ZERO_WIDTH_SPACE + m.group(1)[1:], source)
    source = _DIRECTIVE_COLON.sub(r"\\:", source)
    source = _LINE_START.sub(r"\1\\\2", source)
    source = _LINE_START_NUMBER.sub(r"\1\\\2", source)
    return source.replace("\n", "  \n")  # a hard break: the writer's line breaks stay
