"""`python3 -m unittest` (or pytest) in this folder."""

import unittest

from texts import LOCALES, TEXTS, lookup


class TextsTest(unittest.TestCase):
    def test_every_key_in_every_locale_and_nothing_else(self):
        for key in TEXTS:
            for locale in LOCALES:
                self.assertTrue(lookup(key, locale))
        self.assertIsNone(lookup("cmd.start.desc", "de"))
        self.assertIsNone(lookup("cmd.nope.desc", "en"))


if __name__ == "__main__":
    unittest.main()
