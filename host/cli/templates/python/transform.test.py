import unittest

import weir
from app import Upper


class UpperTest(unittest.TestCase):
    def test_upper_cases_drops_and_rejects(self):
        out = Upper({"field": "name"}).process(
            [weir.Record(b'{"id":1,"name":"ada"}', b"k"), weir.Record(b'{"id":2}'), weir.Record(b'"text"')]
        )
        records = [o for o in out if isinstance(o, weir.Record)]
        rejected = [o for o in out if isinstance(o, weir.DeadLetter)]
        self.assertEqual([(r.value, r.key) for r in records], [(b'{"id":1,"name":"ADA"}', b"k")])
        self.assertEqual([d.reason for d in rejected], ["not a JSON object"])


if __name__ == "__main__":
    unittest.main()
