import builtins, sys
print(print, print.__module__, print.__self__, print is builtins.print)
print(1, 2.5, None, True, 'x', sep='-', end='!\n')
print(print.__doc__[:40])
class A:
    def __str__(self): print('inner'); return 'A'
print('before', A(), 'after')
print(sep=None, end=None)
print('x', flush=True)
print('y', flush=False)
print('a', 'b', sep='')
class B:
    def __str__(self): raise ValueError('boom')
try:
    print('p', 'q', B(), 'r')
except ValueError as e:
    print(' caught', e)
print('é€😀', '\udcff' if False else 'ok')
import io
f = io.StringIO(); print('to f', 1, file=f); print(repr(f.getvalue()))
try: print('x', foo=1)
except TypeError as e: print(e)
try: print('x', sep=1)
except TypeError as e: print(e)
try: print('x', flush=1)
except TypeError as e: print(e)
print('x', flush=1)
print(*range(5), sep=', ')
print(10**50, -0.0, float('nan'), 1e300*10, complex(1,2), [1, 'a'], {'k': (1,)}, b'by', sep='|')
print(str, end='')
print()
class S(str):
    def __str__(self): return 'sub'
print(S('orig'), sep=S('-'))
print('a', 'b', sep=S('-'))
sys.stdout.write = lambda s: sys.__stderr__.write('[' + s + ']')
print('patched')
del sys.stdout.write
print('restored')
print('a' * 5000, 'b' * 3000, sep='|', end='<end>\n')
print(*['x' * 700] * 5, sep='.')
print(*[], sep='never')
print('to __stderr__', file=sys.__stderr__)
print('file None', file=None)
print('no newline', end='')
print(' then flush', end='', flush=True)
print()
print(1, 2, 3, sep=None, end=None, file=None, flush=False)
try:
    print('x', flush='yes')
except TypeError as e:
    print('TypeError', e)
else:
    print('flush accepts any truth value')
try:
    print(10 ** 5000)
except ValueError as e:
    print('ValueError', str(e)[:40])
import inspect
print(inspect.signature(print), repr(print.__text_signature__), print.__doc__ == builtins.print.__doc__)
print(repr(print.__doc__))
print(0, 1, -1, 9, 10, -10, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 10**19, True, False, sep=',')
print(*[-(2 ** i) for i in range(0, 70, 7)], *[2 ** i - 1 for i in range(0, 70, 9)])
class I(int):
    def __str__(self): return 'I!'
print(I(5), int(I(5)))
