"""The pure-Python port of numpy's array2string (used when numpy is missing) against known
outputs, and against numpy itself when it imports. No server needed."""
import math
import random
import unittest

from gradserve._format import _to_dtype, array2string, describe

try:
    import numpy
    numpy.zeros(1)
except Exception:  # missing or broken
    numpy = None


class KnownOutputs(unittest.TestCase):
    def s(self, flat, shape, dtype='float32'):
        return array2string([_to_dtype(float(v), dtype) for v in flat], shape, dtype)

    def test_chapter(self):
        self.assertEqual(self.s([0, 1, 2, 3], (4, 1)), '[[0.]\n [1.]\n [2.]\n [3.]]')
        self.assertEqual(self.s([0, 4, 8, 12], (4, 1)), '[[ 0.]\n [ 4.]\n [ 8.]\n [12.]]')
        self.assertEqual(self.s([1], (1,)), '[1.]')
        self.assertEqual(describe((4, 1), 'float32'), '<NDArray 4x1 @gradserve>')
        self.assertEqual(describe((1,), 'float32'), '<NDArray 1 @gradserve>')

    def test_rules(self):
        self.assertEqual(self.s([0.5, 4], (2,)), '[0.5 4. ]')
        self.assertEqual(self.s([math.nan, 1], (2,)), '[nan  1.]')
        self.assertEqual(self.s([1e-5, 1], (2,)), '[1.e-05 1.e+00]')
        self.assertEqual(self.s([1e-5, 2.5], (2,)), '[1.0e-05 2.5e+00]')
        self.assertEqual(self.s([0.1, 1 / 3], (2,)), '[0.1        0.33333334]')
        self.assertEqual(self.s([0.1, 1 / 3], (2,), 'float64'), '[0.1        0.33333333]')
        self.assertEqual(self.s([-0.0, 2], (2,)), '[-0.  2.]')
        self.assertEqual(self.s([math.inf, -math.inf], (2,)), '[ inf -inf]')
        self.assertEqual(self.s([], (0,)), '[]')
        self.assertEqual(self.s(range(2000), (2000,)), '[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]')
        self.assertEqual(self.s(range(20), (20,)),
                         '[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. 17.\n 18. 19.]')
        self.assertEqual(self.s(range(8), (2, 2, 2)), '[[[0. 1.]\n  [2. 3.]]\n\n [[4. 5.]\n  [6. 7.]]]')


@unittest.skipIf(numpy is None, 'numpy is not importable')
class AgainstNumpy(unittest.TestCase):
    def test_random_arrays(self):
        rng = random.Random(1234)
        gens = [lambda: rng.gauss(0, 1), lambda: rng.gauss(0, 1e-5), lambda: rng.gauss(0, 1e9),
                lambda: float(rng.randint(-20, 20)), lambda: rng.uniform(0, 1000),
                lambda: rng.choice([0.5, 2 ** -9, 1 / 3, 0.1, 1e-4, 1e6, 1e8, -0.0, math.nan, math.inf]),
                lambda: 2.0 ** rng.randint(-40, 40)]
        for trial in range(600):
            g1, g2 = rng.choice(gens), rng.choice(gens)
            shape = tuple(rng.randint(1, 5) for _ in range(rng.randint(1, 4)))
            if trial % 40 == 0:
                shape = (rng.randint(1001, 2500),)
            if trial % 41 == 0:
                shape = (rng.randint(20, 40), rng.randint(30, 40))
            n = 1
            for d in shape:
                n *= d
            vals = [g1() if rng.random() < 0.7 else g2() for _ in range(n)]
            for dt in ('float32', 'float64'):
                with numpy.errstate(all='ignore'):
                    a = numpy.array(vals, dtype=dt).reshape(shape)
                self.assertEqual(array2string([float(v) for v in a.ravel()], shape, dt), str(a),
                                 msg='%s %s' % (dt, shape))


if __name__ == '__main__':
    unittest.main()
