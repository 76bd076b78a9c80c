# A SyntaxError of a pseudo-file whose source the code put in linecache: the compiler's text is
# None for a string, and python3's printer does not look the line up in linecache.
import linecache

src = "x = 1\nreturn x\n"
linecache.cache["<gen>"] = (len(src), None, src.splitlines(True), "<gen>")
exec(compile(src, "<gen>", "exec"))
