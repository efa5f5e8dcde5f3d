//! The contracts every store keeps, as functions a store's tests call: the stores in this
//! crate run them, and so can a store written elsewhere. They panic on the first broken rule.

use crate::UserContext;
use crate::menu::Fingerprint;
use crate::scope::{ListKey, Scope};

use super::{Intent, KeyState, KnownUsers, StateStore, UserKey};

/// A user of the known-users contract: private or in a group, with every kind of flag.
pub fn sample(id: i64) -> UserContext {
    let base = if id % 3 == 0 {
        UserContext::in_group(id, -100 - id)
    } else {
        UserContext::private(id)
    };
    base.language(if id % 2 == 0 { "en" } else { "pt-br" })
        .flag("registered", id % 2 == 0)
        .flag("level", id)
        .flag("tier", "gold")
}

/// The contract every store keeps; run against each implementation.
pub async fn store_contract(store: &dyn StateStore) {
    assert_eq!(store.document("rollout").await.unwrap(), None);
    store.set_document("rollout", Some(b"{}")).await.unwrap();
    store
        .set_document("rollout.wasm", Some(&[0, 1, 2]))
        .await
        .unwrap();
    assert_eq!(
        store.document("rollout").await.unwrap().as_deref(),
        Some(&b"{}"[..])
    );
    store.set_document("rollout", None).await.unwrap();
    assert_eq!(store.document("rollout").await.unwrap(), None);
    assert_eq!(
        store.document("rollout.wasm").await.unwrap(),
        Some(vec![0, 1, 2])
    );
    store.set_document("rollout.wasm", None).await.unwrap();
    let key = ListKey::new(Scope::AllPrivateChats, None);
    let other = ListKey::new(Scope::Default, None);
    let (a, b) = (Fingerprint(1), Fingerprint(2));
    assert_eq!(store.load(&key).await.unwrap(), KeyState::default());
    let t = store.begin(&key, Intent::Set(a)).await.unwrap();
    let uncertain = store.load(&key).await.unwrap();
    assert_eq!(uncertain.pending, Some(Intent::Set(a)));
    assert!(!uncertain.holds(Some(a)), "an unconfirmed key is uncertain");
    store.confirm(&key, Intent::Set(a), t).await.unwrap();
    assert!(store.load(&key).await.unwrap().holds(Some(a)));
    let t = store.begin(&key, Intent::Set(b)).await.unwrap();
    let state = store.load(&key).await.unwrap();
    assert_eq!(state.applied, Some(a), "the confirmed version stays known");
    store.confirm(&key, Intent::Set(b), t).await.unwrap();
    store.begin(&other, Intent::Set(a)).await.unwrap();
    let never = ListKey::new(Scope::AllGroupChats, None);
    let many = store.load_many(&[&other, &never, &key]).await.unwrap();
    assert_eq!(
        many,
        vec![
            store.load(&other).await.unwrap(),
            KeyState::default(),
            store.load(&key).await.unwrap()
        ]
    );
    assert!(many[2].holds(Some(b)) && !many[0].holds(Some(a)));
    assert!(store.load_many(&[]).await.unwrap().is_empty());
    let mut entries = store.entries().await.unwrap();
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(entries.len(), 2);
    let t = store.begin(&key, Intent::Delete).await.unwrap();
    store.confirm(&key, Intent::Delete, t).await.unwrap();
    assert!(store.load(&key).await.unwrap().holds(None));

    assert_eq!(store.menu_button().await.unwrap(), None);
    store.record_menu_button(Some("commands")).await.unwrap();
    assert_eq!(
        store.menu_button().await.unwrap().as_deref(),
        Some("commands")
    );
}

/// The contract every known-users store keeps; run against each implementation.
pub async fn known_users_contract(store: &dyn KnownUsers) {
    for id in 0..10 {
        assert!(store.remember(&sample(id), 1).await.unwrap());
    }
    assert!(!store.remember(&sample(3), 1).await.unwrap(), "not new");
    assert_eq!(store.count().await.unwrap(), 10);
    // Walk in pages of 3: every user behind generation 2, once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.behind(2, cursor.as_ref(), 3).await.unwrap();
        seen.extend(page.into_iter().map(|u| u.context));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen.sort_by_key(|c| c.user_id);
    assert_eq!(seen, (0..10).map(sample).collect::<Vec<_>>());
    // Mark four: they drop out of the walk for generation 2. A fifth was given a newer
    // context since it was read: it is not marked.
    let newer = sample(4).flag("registered", false).flag("orders", 99);
    assert!(!store.remember(&newer, 1).await.unwrap());
    let read: Vec<UserContext> = (0..5).map(sample).collect();
    let given: Vec<&UserContext> = read.iter().collect();
    assert_eq!(store.mark(&given, 2).await.unwrap(), 4);
    store.remember(&sample(4), 1).await.unwrap();
    let (page, next) = store.behind(2, None, 100).await.unwrap();
    assert_eq!(page.len(), 6);
    assert!(next.is_none());
    assert!(
        page.iter()
            .all(|u| u.context.user_id >= 4 && u.generation == 1)
    );
    let got = store.get(UserKey::of(&sample(5))).await.unwrap().unwrap();
    assert_eq!((got.context, got.generation), (sample(5), 1));
    store.forget(UserKey::of(&sample(9))).await.unwrap();
    assert!(store.get(UserKey::of(&sample(9))).await.unwrap().is_none());
    assert_eq!(store.count().await.unwrap(), 9);
    assert_eq!(store.reconciled().await.unwrap(), None);
    store.set_reconciled(2).await.unwrap();
    assert_eq!(store.reconciled().await.unwrap(), Some(2));
}
