//! The shop's texts, shared with the interface-0.1 fixture in `tests/plugins/`.

/// (key, en, ru, es)
pub const TEXTS: &[(&str, &str, &str, &str)] = &[
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
