# unittest.main() ends with sys.exit(not result.wasSuccessful()): a bool is an integer status.
import io
import sys
import unittest


class Passing(unittest.TestCase):
    def test_passes(self):
        self.assertEqual(sorted([3, 1, 2]), [1, 2, 3])


print("running")
unittest.main(testRunner=unittest.TextTestRunner(stream=io.StringIO()))
