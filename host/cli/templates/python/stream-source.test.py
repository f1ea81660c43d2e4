import unittest

from app import Source


class SourceTest(unittest.TestCase):
    def test_polls_up_to_the_limit(self):
        source = Source({"per_poll": 4, "limit": 6}, None)
        self.assertEqual(len(source.poll(100, 0).records), 4)
        last = source.poll(100, 0)
        self.assertEqual((len(last.records), last.checkpoint), (2, 6))
        self.assertEqual(source.poll(100, 0).records, [])


if __name__ == "__main__":
    unittest.main()
