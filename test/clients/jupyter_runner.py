"""Runs notebook cells in order in one interpreter, the way Jupyter does, and reports each cell's
printed output and displayed value (repr of a last bare expression that is not None) as one JSON
line per cell on stdout. Stops at the first cell that raises (as "Run all" does).

Usage: python3 jupyter_runner.py cells.json   where cells.json is [{"n": 2, "code": "..."}, ...]
"""
import ast
import contextlib
import io
import json
import sys
import traceback


def run(cells):
    namespace = {'__name__': '__main__'}
    real_stdout = sys.stdout
    for cell in cells:
        n, code = cell['n'], cell['code']
        buf = io.StringIO()
        record = {'n': n, 'stdout': '', 'display': None, 'error': None}
        try:
            tree = ast.parse(code, filename='<cell %s>' % n)
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            with contextlib.redirect_stdout(buf):
                exec(compile(tree, '<cell %s>' % n, 'exec'), namespace)
                if last is not None:
                    value = eval(compile(last, '<cell %s>' % n, 'eval'), namespace)
                    if value is not None:
                        record['display'] = repr(value)
                    del value  # Jupyter would keep it in Out[n]; a script does not
        except BaseException:
            record['error'] = traceback.format_exc()
        record['stdout'] = buf.getvalue()
        real_stdout.write(json.dumps(record) + '\n')
        real_stdout.flush()
        if record['error']:
            return 1
    return 0


if __name__ == '__main__':
    with open(sys.argv[1], encoding='utf-8') as fh:
        sys.exit(run(json.load(fh)))
