# After a byte order mark, the caret under a syntax error after tabs and wide characters.
x = 1 +		  名 +
