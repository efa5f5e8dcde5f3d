"""The decision, tested natively: `python3 -m unittest` (or pytest) in this folder."""

import unittest

from tiered import tier


class TierTest(unittest.TestCase):
    def test_the_first_true_flag_decides(self):
        self.assertEqual(tier({}), "guest")
        self.assertEqual(tier({"registered": True}), "user")
        self.assertEqual(tier({"registered": True, "premium": True}), "premium")
        self.assertEqual(tier({"admin": True, "banned": True}), "banned")

    def test_only_boolean_true_counts(self):
        self.assertEqual(tier({"registered": 1}), "guest")
        self.assertEqual(tier({"registered": "true"}), "guest")
        self.assertEqual(tier({"admin": False, "registered": True}), "user")


if __name__ == "__main__":
    unittest.main()
