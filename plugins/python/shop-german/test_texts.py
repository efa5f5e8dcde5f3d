"""`python3 -m unittest` in this folder."""

import unittest

from texts import TEXTS, lookup


class TextsTest(unittest.TestCase):
    def test_every_key_has_a_german_text(self):
        for key in TEXTS:
            self.assertTrue(lookup(key, "de"))

    def test_other_locales_and_unknown_keys_fall_through(self):
        self.assertIsNone(lookup("shop.start.desc", "en"))
        self.assertIsNone(lookup("shop.nope.desc", "de"))


if __name__ == "__main__":
    unittest.main()
