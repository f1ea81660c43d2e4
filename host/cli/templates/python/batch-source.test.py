import unittest

from app import Source


class SourceTest(unittest.TestCase):
    def test_resumes_after_the_cursor(self):
        source = Source({"count": 5}, 2)
        batch = source.next(10)
        self.assertEqual(batch.records, [{"n": 2}, {"n": 3}, {"n": 4}])
        self.assertEqual(batch.checkpoint, 5)
        self.assertIsNone(source.next(10))


if __name__ == "__main__":
    unittest.main()
