# -*- coding: latin-1 -*-
# A Latin-1 file: its cookie decides its text, in strings, in tracebacks and in warnings.
import warnings
print('café', len('café'), ascii('naïve'))
warnings.warn('attention: très')
total = 'é' + 1  # ça plante
