"""`python3 -m unittest` (or pytest) in this folder."""

import unittest

from rules import PROFILES, decide


class RulesTest(unittest.TestCase):
    def test_admins_then_registered_users_then_guests(self):
        self.assertEqual(decide(set()), "guest")
        self.assertEqual(decide({"registered"}), "user")
        self.assertEqual(decide({"registered", "admin"}), "admin")
        self.assertIn(decide({"admin"}), PROFILES)


if __name__ == "__main__":
    unittest.main()
