//! "Did you mean": a user's unknown command answered from their own menu, through the shop
//! example's real plugins (the tiered resolver decides the menu, the shop translator writes
//! the Spanish descriptions). One table, every failure mode other bots' suggesters have:
//! commands of other profiles, descriptions of other languages, short texts, gibberish, ties.

mod common;

use std::sync::Arc;

use cmdscope::engine::Engine;
use cmdscope::{CommandManager, UserContext};

fn engine() -> Engine {
    let (resolver, translator) = common::shop_plugins();
    CommandManager::builder(common::shop_config())
        .resolver(resolver)
        .translator(translator)
        .engine()
}

/// Who types: a shop user in a given state.
#[derive(Clone, Copy, Debug)]
enum Who {
    Guest,
    User,
    Premium,
    Admin,
    Banned,
    UserRu,
    UserEs,
    UserPtBr,
    UserInGroup,
}

impl Who {
    fn context(self) -> UserContext {
        let en = |ctx: UserContext| ctx.language("en");
        match self {
            Who::Guest => en(UserContext::private(1)),
            Who::User => en(UserContext::private(2).flag("registered", true)),
            Who::Premium => en(UserContext::private(3).flag("premium", true)),
            Who::Admin => en(UserContext::private(4).flag("admin", true)),
            Who::Banned => en(UserContext::private(5).flag("banned", true)),
            Who::UserRu => UserContext::private(6)
                .flag("registered", true)
                .language("ru"),
            Who::UserEs => UserContext::private(7)
                .flag("registered", true)
                .language("es"),
            Who::UserPtBr => UserContext::private(8)
                .flag("registered", true)
                .language("pt-br"),
            Who::UserInGroup => en(UserContext::in_group(9, -100_500).flag("registered", true)),
        }
    }
}

/// The command suggested, and whether it was typed exactly.
type Expected = Option<(&'static str, bool)>;

/// (who, what they sent, what they get).
const CASES: &[(Who, &str, Expected)] = {
    use Who::*;
    &[
        // One edit away, whatever the edit, however the text is written.
        (User, "/ordres", Some(("orders", false))),
        (
            User,
            "/ordres@shop_bot extra words",
            Some(("orders", false)),
        ),
        (User, "ordres", Some(("orders", false))),
        (User, "/ORDRES", Some(("orders", false))),
        (User, "  /ordres  ", Some(("orders", false))),
        (User, "/order", Some(("orders", false))),
        (User, "/orderss", Some(("orders", false))),
        (User, "/ordets", Some(("orders", false))),
        (User, "/hlep", Some(("help", false))),
        (User, "/hepl", Some(("help", false))),
        (User, "/hel", Some(("help", false))),
        (User, "/helpp", Some(("help", false))),
        (User, "/strat", Some(("start", false))),
        (User, "/satrt", Some(("start", false))),
        (User, "/tsart", Some(("start", false))),
        (User, "/starts", Some(("start", false))),
        (User, "/start_", Some(("start", false))),
        (User, "/catalgo", Some(("catalog", false))),
        (User, "/katalog", Some(("catalog", false))),
        (User, "/cartt", Some(("cart", false))),
        (User, "/crat", Some(("cart", false))),
        (User, "/profiel", Some(("profile", false))),
        (User, "/prfile", Some(("profile", false))),
        // Two edits only for long names; a start of three letters or more.
        (User, "/ordersss", Some(("orders", false))),
        (User, "/prof", Some(("profile", false))),
        (User, "/cata", Some(("catalog", false))),
        // A command the user has is found, not unknown.
        (User, "/orders", Some(("orders", true))),
        (User, "/Orders@shop_bot", Some(("orders", true))),
        (User, "/help@another_bot now", Some(("help", true))),
        (User, "/start", Some(("start", true))),
        (Premium, "/deals", Some(("deals", true))),
        (Admin, "/stats", Some(("stats", true))),
        (Admin, "/ban", Some(("ban", true))),
        (Banned, "/appeal", Some(("appeal", true))),
        // Only the user's own menu: never another profile's commands.
        (Guest, "/ordres", None),
        (Guest, "/orders", None),
        (Guest, "/stats", None),
        (User, "/stats", None),
        (User, "/deals", None),
        (User, "/ban", None),
        (Banned, "/start", None),
        (Banned, "/ordres", None),
        (Premium, "/deal", Some(("deals", false))),
        (Premium, "/dealz", Some(("deals", false))),
        (Admin, "/stast", Some(("stats", false))),
        (Admin, "/bna", Some(("ban", false))),
        (Admin, "/brodcast", Some(("broadcast", false))),
        (Admin, "/broadcats", Some(("broadcast", false))),
        (Admin, "/broad", Some(("broadcast", false))),
        (Banned, "/apeal", Some(("appeal", false))),
        (Banned, "/hlep", Some(("help", false))),
        // Ties: one edit to two commands goes to the one the text starts, then menu order.
        (Admin, "/stat", Some(("stats", false))),
        (Guest, "/stat", Some(("start", false))),
        (User, "/cat", Some(("cart", false))),
        (Guest, "/cat", Some(("catalog", false))),
        // Short texts and gibberish get nothing (Jaro-Winkler would suggest something).
        (User, "/he", None),
        (User, "/h", None),
        (User, "/s", None),
        (User, "/st", None),
        (User, "/xyzzy", None),
        (User, "/asdfgh", None),
        (User, "/qwerty", None),
        (User, "/123", None),
        (User, "/s_t_a_r_t", None),
        (User, "hello there", None),
        (User, "/", None),
        (User, "", None),
        (User, "/заказы", None),
        (User, "/orders!", None),
        // Other languages and chats: the same commands, the user's menu.
        (UserRu, "/ordres", Some(("orders", false))),
        (UserEs, "/ordres", Some(("orders", false))),
        (UserPtBr, "/ordres", Some(("orders", false))),
        (UserInGroup, "/ordres", Some(("orders", false))),
        (UserInGroup, "/stats", None),
    ]
};

#[tokio::test]
async fn suggestions_come_from_the_users_own_menu_in_their_language() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let engine = Arc::new(engine());
    let mut wrong = Vec::new();
    for &(who, text, want) in CASES {
        let got = engine.suggest(&who.context(), text).await;
        let got_pair = got.as_ref().map(|s| (s.command.as_str(), s.exact));
        if got_pair != want {
            wrong.push(format!("{who:?} {text:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn the_description_is_in_the_users_language() {
    let engine = engine();
    let description = |who: Who| {
        let engine = &engine;
        async move {
            engine
                .suggest(&who.context(), "/ordres")
                .await
                .unwrap()
                .description
        }
    };
    assert_eq!(description(Who::User).await, "Your orders");
    assert_eq!(description(Who::UserRu).await, "Ваши заказы");
    // From the translator plugin (the config has no Spanish text).
    assert_eq!(description(Who::UserEs).await, "Tus pedidos");
    // No Portuguese list: the fallback language.
    assert_eq!(description(Who::UserPtBr).await, "Your orders");
}

#[tokio::test]
async fn the_same_text_always_gets_the_same_answer() {
    let engine = engine();
    let ctx = Who::Admin.context();
    let first = engine.suggest(&ctx, "/stat").await;
    for _ in 0..20 {
        assert_eq!(engine.suggest(&ctx, "/stat").await, first);
    }
}
