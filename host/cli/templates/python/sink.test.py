import os
import tempfile
import unittest

import weir
from app import Lines


class LinesTest(unittest.TestCase):
    def test_appends_objects_and_rejects_the_rest(self):
        with tempfile.TemporaryDirectory() as d:
            sink = Lines({"dir": d})
            rejected = sink.write([weir.Record(b'{"a":1}'), weir.Record(b"oops"), weir.Record(b"[1]")])
            sink.flush()
            sink.out.close()
            with open(os.path.join(d, "out.jsonl"), "rb") as f:
                self.assertEqual(f.read(), b'{"a":1}\n')
            self.assertEqual([r.value for r in rejected], [b"oops", b"[1]"])
            self.assertEqual(rejected[1].reason, "not a JSON object")


if __name__ == "__main__":
    unittest.main()
