"""autograd.Function against a live server: set GRADSERVE_URL (the tests are skipped otherwise)."""
import math
import os
import unittest

import gradserve
from gradserve import autograd, nd

URL = os.environ.get('GRADSERVE_URL')


class Sigmoid(autograd.Function):
    def forward(self, x):
        y = 1 / (1 + nd.exp(-x))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        y, = self.saved_tensors
        return dy * y * (1 - y)


class DivMul(autograd.Function):
    def forward(self, x, y):
        self.save_for_backward(x, y)
        return x / y, x * y

    def backward(self, dm, dn):
        x, y = self.saved_tensors
        return dm / y + dn * y, dn * x - dm * x / y / y


@unittest.skipUnless(URL, 'GRADSERVE_URL is not set')
class FunctionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        gradserve.connect(URL, seed=3)

    @classmethod
    def tearDownClass(cls):
        gradserve.disconnect()

    def test_sigmoid_matches_finite_differences(self):
        xs = [-2.0, -0.5, 0.0, 0.3, 3.0]
        x = nd.array(xs, dtype='float64')
        x.attach_grad()
        with autograd.record():
            y = Sigmoid()(x)
        y.backward()
        sig = lambda v: 1 / (1 + math.exp(-v))
        for g, v in zip(x.grad.tolist(), xs):
            fd = (sig(v + 1e-6) - sig(v - 1e-6)) / 2e-6
            self.assertAlmostEqual(g, fd, places=8)
        for a, v in zip(y.tolist(), xs):
            self.assertAlmostEqual(a, sig(v), places=12)

    def test_two_outputs_equal_the_table_ops(self):
        x = nd.array([1.0, 2.0, 3.0], dtype='float64')
        y = nd.array([0.5, 4.0, -1.0], dtype='float64')
        x.attach_grad()
        y.attach_grad()
        with autograd.record():
            m, n = DivMul()(x, y)
            autograd.backward([m, n])
        dx, dy = x.grad.tolist(), y.grad.tolist()
        with autograd.record():
            autograd.backward([x / y, x * y])
        self.assertEqual(dx, x.grad.tolist())
        self.assertEqual(dy, y.grad.tolist())

    def test_each_instance_is_called_once(self):
        f = Sigmoid()
        x = nd.ones(2)
        f(x)
        with self.assertRaises(AssertionError):
            f(x)


if __name__ == '__main__':
    unittest.main()
