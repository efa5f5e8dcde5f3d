//! Desired state: which list should be set at which (scope, language), for the configured
//! scopes and for one user. Pure: no I/O.
//!
//! A user gets a per-chat override only where their menu differs from the one Telegram would
//! show them anyway through the configured scopes (decided with [`crate::scope`]); when the two
//! become equal again, the override is removed.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{Config, MenuButton};
use crate::menu::{Menu, MenuTable};
use crate::scope::{ChatRef, ListKey, Scope, Viewer};

/// One list the plan wants set.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedList {
    pub key: ListKey,
    pub profile: String,
    pub commands: Menu,
}

/// Every configured list, plus the menu button: what `setup_all` applies.
#[derive(Debug, Clone)]
pub struct Plan {
    pub lists: Vec<PlannedList>,
    pub menu_button: MenuButton,
    index: HashMap<ListKey, usize, foldhash::fast::RandomState>,
}

impl Plan {
    /// For each configured scope: a list per language, and one without a language (in the
    /// fallback language) so users whose language is not configured still see the scope's menu.
    pub fn build(config: &Config, menus: &MenuTable) -> Plan {
        let mut lists = Vec::new();
        for spec in &config.scopes {
            let langs = spec.languages.iter().map(|&l| (Some(l), l));
            for (key_lang, menu_lang) in langs.chain([(None, config.fallback_language)]) {
                let commands = menus
                    .get(&spec.profile, menu_lang)
                    .expect("validated config: profile and language exist")
                    .clone();
                lists.push(PlannedList {
                    key: ListKey::new(spec.scope.clone(), key_lang),
                    profile: spec.profile.clone(),
                    commands,
                });
            }
        }
        let index = lists
            .iter()
            .enumerate()
            .map(|(i, l)| (l.key.clone(), i))
            .collect();
        Plan {
            lists,
            menu_button: config.menu_button,
            index,
        }
    }

    pub fn get(&self, key: &ListKey) -> Option<&PlannedList> {
        self.index.get(key).map(|&i| &self.lists[i])
    }

    /// The configured list Telegram shows this viewer when they have no override of their own.
    pub fn inherited(&self, viewer: &Viewer, own_key: &ListKey) -> Option<&PlannedList> {
        viewer
            .effective(|k| k != own_key && self.index.contains_key(k))
            .and_then(|k| self.get(&k))
    }

    /// What the user's own override key should hold so that they see `menu`.
    pub fn user_target(&self, viewer: &Viewer, menu: &Menu) -> UserTarget {
        let key = override_key(viewer);
        let inherited = self.inherited(viewer, &key);
        let configured = self.get(&key).map(|l| l.commands.clone());
        let shown_without_override = configured.as_ref().or(inherited.map(|l| &l.commands));
        let desired =
            if shown_without_override.is_some_and(|m| m[..] == menu[..]) || menu.is_empty() {
                // Nothing to override (or nothing Telegram could show: an empty list is no list).
                configured
            } else {
                Some(menu.clone())
            };
        UserTarget { key, desired }
    }
}

/// Where a user's own list lives: their private chat, or their membership in a group.
///
/// The override has no language: it keeps applying when the user switches their Telegram
/// client language (a language-specific override would silently stop matching), and the next
/// `update_user` after a language change rebuilds it in the new language.
pub fn override_key(viewer: &Viewer) -> ListKey {
    let chat_id = ChatRef::Id(viewer.chat_id);
    let scope = if viewer.chat_type.is_group() {
        Scope::ChatMember {
            chat_id,
            user_id: viewer.user_id,
        }
    } else {
        Scope::Chat { chat_id }
    };
    ListKey::new(scope, None)
}

/// The desired content of a user's override key; `None` means it must not be set.
#[derive(Debug, Clone, PartialEq)]
pub struct UserTarget {
    pub key: ListKey,
    pub desired: Option<Menu>,
}

/// The Bot API shape of a plan, as `cmdscope plan --format json` prints it.
#[derive(Debug, Serialize)]
pub struct PlanJson<'a> {
    pub lists: Vec<PlannedListJson<'a>>,
    pub menu_button: MenuButtonJson,
}

#[derive(Debug, Serialize)]
pub struct PlannedListJson<'a> {
    pub scope: &'a Scope,
    pub language_code: Option<&'a str>,
    pub commands: &'a [crate::menu::BotCommand],
}

#[derive(Debug, Serialize)]
pub struct MenuButtonJson {
    #[serde(rename = "type")]
    pub kind: MenuButton,
}

impl Plan {
    pub fn to_json(&self) -> PlanJson<'_> {
        PlanJson {
            lists: self
                .lists
                .iter()
                .map(|l| PlannedListJson {
                    scope: &l.key.scope,
                    language_code: l.key.language.as_ref().map(|l| l.as_str()),
                    commands: &l.commands,
                })
                .collect(),
            menu_button: MenuButtonJson {
                kind: self.menu_button,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Format;
    use crate::resolve::{NoTranslator, UserContext};
    use crate::scope::Lang;

    fn setup() -> (Config, MenuTable, Plan) {
        let text = r#"
languages = ["en", "ru"]
default_profile = "guest"
[commands.start]
descriptions = { en = "Start", ru = "Старт" }
[commands.help]
descriptions = { en = "Help", ru = "Помощь" }
[commands.stats]
descriptions = { en = "Stats", ru = "Статистика" }
[profiles.guest]
include = ["start", "help"]
[profiles.group]
include = ["help"]
[profiles.admin]
extends = ["guest"]
include = ["stats"]
[[scopes]]
scope = "default"
profile = "guest"
[[scopes]]
scope = "all_group_chats"
profile = "group"
languages = ["en"]
[[scopes]]
scope = "all_chat_administrators"
profile = "admin"
"#;
        let config = Config::parse(text, Format::Toml, "t.toml").unwrap().config;
        let menus = MenuTable::build(&config, &NoTranslator);
        let plan = Plan::build(&config, &menus);
        (config, menus, plan)
    }

    fn lang(s: &str) -> Lang {
        Lang::parse(s).unwrap()
    }

    #[test]
    fn plan_has_each_language_plus_a_language_free_list() {
        let (_, _, plan) = setup();
        let keys: Vec<String> = plan.lists.iter().map(|l| l.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "default [en]",
                "default [ru]",
                "default [any language]",
                "all_group_chats [en]",
                "all_group_chats [any language]",
                "all_chat_administrators [en]",
                "all_chat_administrators [ru]",
                "all_chat_administrators [any language]",
            ]
        );
        // The language-free list is in the fallback language.
        let any = plan.get(&ListKey::new(Scope::Default, None)).unwrap();
        assert_eq!(any.commands[0].description, "Start");
    }

    /// For every profile, chat type, language and admin bit: after applying the target, the
    /// precedence rule shows the user exactly their profile's menu (or the inherited one when
    /// the profile is empty), and an override exists only when needed.
    #[test]
    fn overrides_exist_only_where_needed_and_always_yield_the_profile_menu() {
        let (config, menus, plan) = setup();
        for profile in config.profiles.keys() {
            for ctx in [
                UserContext::private(7),
                UserContext::private(7).language("ru"),
                UserContext::private(7).language("de"),
                UserContext::in_group(7, -100).language("ru"),
                UserContext::in_group(7, -100).language("en").admin(true),
                UserContext::in_group(7, -100).admin(true),
            ] {
                let viewer = ctx.viewer();
                let menu = menus
                    .get(profile, config.menu_language(viewer.language))
                    .unwrap()
                    .clone();
                let target = plan.user_target(&viewer, &menu);
                let shown = viewer
                    .effective(|k| {
                        if *k == target.key {
                            target.desired.is_some()
                        } else {
                            plan.get(k).is_some()
                        }
                    })
                    .map(|k| {
                        if k == target.key {
                            target.desired.clone().unwrap()
                        } else {
                            plan.get(&k).unwrap().commands.clone()
                        }
                    })
                    .unwrap();
                assert_eq!(shown, menu, "{profile} {ctx:?}");
                let inherited = plan.inherited(&viewer, &target.key).unwrap();
                assert_eq!(
                    target.desired.is_some(),
                    inherited.commands != menu,
                    "{profile} {ctx:?}"
                );
            }
        }
    }

    #[test]
    fn language_switch_keeps_the_override_applying() {
        let (config, menus, plan) = setup();
        let ctx = UserContext::private(7).language("ru");
        let menu = menus.get("admin", lang("ru")).unwrap().clone();
        let target = plan.user_target(&ctx.viewer(), &menu);
        assert_eq!(target.key.language, None);
        // The user switches the app to English: the override still wins over default [en].
        let en = UserContext::private(7).language("en").viewer();
        assert_eq!(
            en.effective(|k| *k == target.key || plan.get(k).is_some()),
            Some(target.key)
        );
        let _ = config;
    }

    #[test]
    fn group_admin_equal_to_inherited_needs_nothing() {
        let (_, menus, plan) = setup();
        let viewer = UserContext::in_group(1, -5)
            .language("ru")
            .admin(true)
            .viewer();
        let target = plan.user_target(&viewer, menus.get("admin", lang("ru")).unwrap());
        assert_eq!(target.desired, None);
        assert_eq!(
            target.key.scope,
            Scope::ChatMember {
                chat_id: ChatRef::Id(-5),
                user_id: 1
            }
        );
    }

    #[test]
    fn json_shape_matches_the_bot_api() {
        let (_, _, plan) = setup();
        let json = serde_json::to_value(plan.to_json()).unwrap();
        assert_eq!(json["menu_button"]["type"], "commands");
        assert_eq!(json["lists"][0]["scope"]["type"], "default");
        assert_eq!(json["lists"][0]["language_code"], "en");
        assert_eq!(json["lists"][2]["language_code"], serde_json::Value::Null);
        assert_eq!(json["lists"][1]["commands"][0]["description"], "Старт");
    }
}
