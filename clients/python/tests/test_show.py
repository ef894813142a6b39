"""autograd.show against a live server: set GRADSERVE_URL (the tests are skipped otherwise)."""
import os
import re
import struct
import tempfile
import unittest

import gradserve
from gradserve import autograd, nd

URL = os.environ.get('GRADSERVE_URL')


@unittest.skipUnless(URL, 'GRADSERVE_URL is not set')
class ShowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        gradserve.connect(URL, seed=7)

    @classmethod
    def tearDownClass(cls):
        gradserve.disconnect()

    def test_show_draws_the_tape_that_recorded_y(self):
        x = nd.arange(4).reshape((4, 1))
        x.attach_grad()
        with autograd.record():
            y = 2 * nd.dot(x.T, x)
        d = autograd.show(y)
        svg = d._repr_svg_()
        # An element to embed in HTML: no XML declaration (nbconvert's HTML export breaks on it),
        # and scaled to the cell's width instead of cut off.
        self.assertTrue(svg.startswith('<svg'), svg[:80])
        self.assertRegex(svg[:200], r'<svg width="100%" style="max-width:[\d.]+pt;height:auto"')
        self.assertIn('viewBox=', svg[:300])
        self.assertIn('</svg>', svg)
        for op in ('transpose', 'dot', 'multiply'):
            self.assertIn('>%s<' % op, svg)
        self.assertIn('grad_req=write', svg)  # x is drawn as a variable
        self.assertRegex(d.tape, r'^t\d+$')
        self.assertIn(d.tape, repr(d))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'tape.svg')
            d.save(path)
            with open(path, encoding='utf-8') as f:
                self.assertEqual(f.read(), d.svg)  # the file is the server's SVG document
        self.assertTrue(d.svg.lstrip().startswith('<?xml') or d.svg.lstrip().startswith('<svg'))
        y.backward()
        # backward freed the history: nothing left to draw
        with self.assertRaisesRegex(ValueError, 'no recorded history'):
            autograd.show(y)

    def test_show_brings_a_png_too_for_viewers_without_svg(self):
        x = nd.arange(4).reshape((4, 1))
        x.attach_grad()
        with autograd.record():
            y = 2 * nd.dot(x.T, x)
        d = autograd.show(y)
        png = d._repr_png_()
        self.assertIsInstance(png, bytes)
        self.assertEqual(png[:8], b'\x89PNG\r\n\x1a\n')
        self.assertEqual(png[12:16], b'IHDR')
        width, height = struct.unpack('>II', png[16:24])
        # The SVG's size in points, at 4/3 pixel a point.
        m = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', d.svg)
        self.assertAlmostEqual(width, float(m.group(1)) * 4 / 3, delta=4)
        self.assertAlmostEqual(height, float(m.group(2)) * 4 / 3, delta=4)
        y.backward()
        # Fetched with the SVG: still there once backward has freed the history.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'tape.PNG')
            d.save(path)
            with open(path, 'rb') as f:
                self.assertEqual(f.read(), d.png)
        self.assertRegex(repr(d), r'\d+ of PNG>')

    def test_a_notebook_gets_both_svg_and_png(self):
        try:
            from IPython.core.formatters import DisplayFormatter
        except ImportError:
            self.skipTest('IPython is not installed')
        v = nd.array([1.0, 2.0])
        v.attach_grad()
        with autograd.record():
            w = (v * 3).sum()
        data, _ = DisplayFormatter().format(autograd.show(w))
        self.assertIn('image/svg+xml', data)
        self.assertIn('image/png', data)
        self.assertTrue(data['image/svg+xml'].startswith('<svg'))

    def test_show_labels_arrays_with_the_callers_names(self):
        weights = nd.array([1.0, 2.0])
        weights.attach_grad()
        with autograd.record():
            squared = weights * weights
            loss = squared.sum()
        svg = autograd.show(loss)._repr_svg_()
        for name in ('weights', 'squared', 'loss'):
            self.assertRegex(svg, r'>%s[ <]' % name)
        self.assertNotRegex(svg, r'>_py\d+')

    def test_show_refuses_arrays_never_recorded(self):
        with self.assertRaisesRegex(ValueError, 'no recorded history'):
            autograd.show(nd.ones((2,)))
        with self.assertRaises(TypeError):
            autograd.show([1, 2])


if __name__ == '__main__':
    unittest.main()
