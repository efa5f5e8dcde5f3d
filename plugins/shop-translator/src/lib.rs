//! The example translator: `shop.<command>.desc` in en, ru and es.
use cmdscope_plugin_sdk::{Translator, TranslatorInfo, export_translator};

struct Shop;

/// (key, en, ru, es)
const TEXTS: &[(&str, &str, &str, &str)] = &[
    (
        "shop.start.desc",
        "Start the bot",
        "Запустить бота",
        "Iniciar el bot",
    ),
    (
        "shop.help.desc",
        "How to use the shop",
        "Как пользоваться магазином",
        "Cómo usar la tienda",
    ),
    (
        "shop.catalog.desc",
        "Browse the catalog",
        "Каталог товаров",
        "Ver el catálogo",
    ),
    ("shop.cart.desc", "Your cart", "Ваша корзина", "Tu carrito"),
    (
        "shop.orders.desc",
        "Your orders",
        "Ваши заказы",
        "Tus pedidos",
    ),
    (
        "shop.profile.desc",
        "Your profile",
        "Ваш профиль",
        "Tu perfil",
    ),
    (
        "shop.deals.desc",
        "Members-only deals",
        "Скидки для участников",
        "Ofertas para miembros",
    ),
    (
        "shop.stats.desc",
        "Sales statistics",
        "Статистика продаж",
        "Estadísticas de ventas",
    ),
    (
        "shop.broadcast.desc",
        "Message all customers",
        "Рассылка покупателям",
        "Mensaje a todos los clientes",
    ),
    (
        "shop.ban.desc",
        "Ban a user",
        "Заблокировать пользователя",
        "Bloquear a un usuario",
    ),
    (
        "shop.appeal.desc",
        "Appeal a ban",
        "Обжаловать блокировку",
        "Apelar un bloqueo",
    ),
];

pub fn lookup(key: &str, locale: &str) -> Option<&'static str> {
    let (_, en, ru, es) = TEXTS.iter().find(|(k, ..)| *k == key)?;
    match locale {
        "en" => Some(en),
        "ru" => Some(ru),
        "es" => Some(es),
        _ => None,
    }
}

impl Translator for Shop {
    fn info() -> TranslatorInfo {
        TranslatorInfo::new(
            "shop-translator",
            env!("CARGO_PKG_VERSION"),
            &["en", "ru", "es"],
        )
    }

    fn translate(key: String, locale: String) -> Option<String> {
        lookup(&key, &locale).map(str::to_string)
    }

    fn translate_batch(keys: Vec<String>, locale: String) -> Vec<Option<String>> {
        keys.iter()
            .map(|k| lookup(k, &locale).map(str::to_string))
            .collect()
    }
}

export_translator!(Shop);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_in_every_locale() {
        for (key, ..) in TEXTS {
            for locale in ["en", "ru", "es"] {
                assert!(
                    lookup(key, locale).is_some_and(|t| !t.is_empty()),
                    "{key} {locale}"
                );
            }
        }
        assert_eq!(lookup("shop.start.desc", "de"), None);
        assert_eq!(lookup("nope", "en"), None);
    }
}
