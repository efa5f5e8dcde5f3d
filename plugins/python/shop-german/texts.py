"""German descriptions for the shop's commands (keys as in examples/shop.toml)."""

TEXTS = {
    "shop.start.desc": "Bot starten",
    "shop.help.desc": "So funktioniert der Shop",
    "shop.catalog.desc": "Katalog ansehen",
    "shop.cart.desc": "Dein Warenkorb",
    "shop.orders.desc": "Deine Bestellungen",
    "shop.profile.desc": "Dein Profil",
    "shop.deals.desc": "Angebote für Mitglieder",
    "shop.stats.desc": "Verkaufsstatistik",
    "shop.broadcast.desc": "Nachricht an alle Kunden",
    "shop.ban.desc": "Nutzer sperren",
    "shop.appeal.desc": "Sperre anfechten",
}

LOCALES = ["de"]


def lookup(key: str, locale: str):
    """The text for `key` in `locale`, or None (the host then falls back)."""
    if locale not in LOCALES:
        return None
    return TEXTS.get(key)
