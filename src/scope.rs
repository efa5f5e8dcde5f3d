//! The seven Bot API command scopes and Telegram's precedence rule.
//!
//! This is the one place that knows which command list a user sees. The planner uses it
//! to decide whether a user needs a per-chat override, and the emulator uses it to answer
//! "what would Telegram show this user". Pure: no I/O, no clock.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A chat as the Bot API names it in a scope: a numeric id or a public `@username`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatRef {
    Id(i64),
    Username(String),
}

impl fmt::Display for ChatRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatRef::Id(id) => write!(f, "{id}"),
            ChatRef::Username(name) => f.write_str(name),
        }
    }
}

/// A `BotCommandScope`. Serialises to the Bot API object (`{"type":"chat","chat_id":1}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Scope {
    Default,
    AllPrivateChats,
    AllGroupChats,
    AllChatAdministrators,
    Chat { chat_id: ChatRef },
    ChatAdministrators { chat_id: ChatRef },
    ChatMember { chat_id: ChatRef, user_id: i64 },
}

/// What a scope type needs besides its name; drives config validation and the emulator's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Default,
    AllPrivateChats,
    AllGroupChats,
    AllChatAdministrators,
    Chat,
    ChatAdministrators,
    ChatMember,
}

impl ScopeKind {
    pub const ALL: [ScopeKind; 7] = [
        ScopeKind::Default,
        ScopeKind::AllPrivateChats,
        ScopeKind::AllGroupChats,
        ScopeKind::AllChatAdministrators,
        ScopeKind::Chat,
        ScopeKind::ChatAdministrators,
        ScopeKind::ChatMember,
    ];

    /// The Bot API type name, e.g. `all_private_chats`.
    pub fn name(self) -> &'static str {
        match self {
            ScopeKind::Default => "default",
            ScopeKind::AllPrivateChats => "all_private_chats",
            ScopeKind::AllGroupChats => "all_group_chats",
            ScopeKind::AllChatAdministrators => "all_chat_administrators",
            ScopeKind::Chat => "chat",
            ScopeKind::ChatAdministrators => "chat_administrators",
            ScopeKind::ChatMember => "chat_member",
        }
    }

    /// Parses a Bot API type name. Returns the kind and, when an aiogram-cmds alias was used,
    /// the canonical name to suggest.
    pub fn parse(name: &str) -> Option<(ScopeKind, Option<&'static str>)> {
        if let Some(kind) = ScopeKind::ALL.into_iter().find(|k| k.name() == name) {
            return Some((kind, None));
        }
        match name {
            "all_chat_admins" => Some((
                ScopeKind::AllChatAdministrators,
                Some("all_chat_administrators"),
            )),
            "chat_admins" => Some((ScopeKind::ChatAdministrators, Some("chat_administrators"))),
            _ => None,
        }
    }

    pub fn needs_chat_id(self) -> bool {
        matches!(
            self,
            ScopeKind::Chat | ScopeKind::ChatAdministrators | ScopeKind::ChatMember
        )
    }

    pub fn needs_user_id(self) -> bool {
        self == ScopeKind::ChatMember
    }

    /// Builds the scope from its parts; `None` when a required id is missing.
    pub fn build(self, chat_id: Option<ChatRef>, user_id: Option<i64>) -> Option<Scope> {
        Some(match self {
            ScopeKind::Default => Scope::Default,
            ScopeKind::AllPrivateChats => Scope::AllPrivateChats,
            ScopeKind::AllGroupChats => Scope::AllGroupChats,
            ScopeKind::AllChatAdministrators => Scope::AllChatAdministrators,
            ScopeKind::Chat => Scope::Chat { chat_id: chat_id? },
            ScopeKind::ChatAdministrators => Scope::ChatAdministrators { chat_id: chat_id? },
            ScopeKind::ChatMember => Scope::ChatMember {
                chat_id: chat_id?,
                user_id: user_id?,
            },
        })
    }
}

impl Scope {
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Default => ScopeKind::Default,
            Scope::AllPrivateChats => ScopeKind::AllPrivateChats,
            Scope::AllGroupChats => ScopeKind::AllGroupChats,
            Scope::AllChatAdministrators => ScopeKind::AllChatAdministrators,
            Scope::Chat { .. } => ScopeKind::Chat,
            Scope::ChatAdministrators { .. } => ScopeKind::ChatAdministrators,
            Scope::ChatMember { .. } => ScopeKind::ChatMember,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Chat { chat_id } | Scope::ChatAdministrators { chat_id } => {
                write!(f, "{}(chat_id={chat_id})", self.kind().name())
            }
            Scope::ChatMember { chat_id, user_id } => {
                write!(f, "chat_member(chat_id={chat_id}, user_id={user_id})")
            }
            _ => f.write_str(self.kind().name()),
        }
    }
}

/// A two-letter ISO 639-1 language code, lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lang([u8; 2]);

impl Lang {
    /// Accepts exactly two ASCII letters (either case), as `language_code` of a list must be.
    pub fn parse(code: &str) -> Option<Lang> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Lang([a.to_ascii_lowercase(), b.to_ascii_lowercase()]))
            }
            _ => None,
        }
    }

    /// Normalises a user's IETF tag as Telegram sends it (`pt-br`, `en`, `zh-hans`) to its
    /// primary language subtag, which is what list matching uses.
    pub fn from_user_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        Lang::parse(primary)
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Lang {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Lang {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Lang::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is not a two-letter language code"))
        })
    }
}

/// Where one command list lives in Telegram: a scope and an optional language.
/// `language: None` is the list for everyone in the scope without a dedicated language list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListKey {
    pub scope: Scope,
    pub language: Option<Lang>,
}

impl ListKey {
    pub fn new(scope: Scope, language: Option<Lang>) -> ListKey {
        ListKey { scope, language }
    }

    /// A stable text form for state stores: the scope's Bot API JSON, `|`, the language (or
    /// nothing). Reversed by [`ListKey::from_storage_key`].
    pub fn storage_key(&self) -> String {
        let scope = serde_json::to_string(&self.scope).expect("scopes serialise");
        match self.language {
            Some(lang) => format!("{scope}|{lang}"),
            None => format!("{scope}|"),
        }
    }

    pub fn from_storage_key(text: &str) -> Option<ListKey> {
        let (scope, lang) = text.rsplit_once('|')?;
        let language = match lang {
            "" => None,
            code => Some(Lang::parse(code)?),
        };
        Some(ListKey::new(serde_json::from_str(scope).ok()?, language))
    }
}

impl fmt::Display for ListKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.language {
            Some(lang) => write!(f, "{} [{lang}]", self.scope),
            None => write!(f, "{} [any language]", self.scope),
        }
    }
}

/// The kind of chat a user is looking at the menu in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    Private,
    Group,
    Supergroup,
}

impl ChatType {
    pub fn parse(s: &str) -> Option<ChatType> {
        match s {
            "private" => Some(ChatType::Private),
            "group" => Some(ChatType::Group),
            "supergroup" => Some(ChatType::Supergroup),
            _ => None,
        }
    }

    pub fn is_group(self) -> bool {
        matches!(self, ChatType::Group | ChatType::Supergroup)
    }
}

/// Who is looking at the menu, and where: everything the precedence rule depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub chat_type: ChatType,
    /// The chat's id; for a private chat it is the user's id.
    pub chat_id: i64,
    pub user_id: i64,
    /// The user's interface language, already normalised; `None` when unknown.
    pub language: Option<Lang>,
    /// Whether the user is an administrator of the (group) chat.
    pub is_admin: bool,
}

impl Viewer {
    /// The scopes that apply to this viewer, most specific first, without languages.
    fn scopes(&self) -> Vec<Scope> {
        let chat = ChatRef::Id(self.chat_id);
        match self.chat_type {
            ChatType::Private => vec![
                Scope::Chat { chat_id: chat },
                Scope::AllPrivateChats,
                Scope::Default,
            ],
            ChatType::Group | ChatType::Supergroup => {
                let mut scopes = vec![Scope::ChatMember {
                    chat_id: chat.clone(),
                    user_id: self.user_id,
                }];
                if self.is_admin {
                    scopes.push(Scope::ChatAdministrators {
                        chat_id: chat.clone(),
                    });
                }
                scopes.push(Scope::Chat { chat_id: chat });
                if self.is_admin {
                    scopes.push(Scope::AllChatAdministrators);
                }
                scopes.push(Scope::AllGroupChats);
                scopes.push(Scope::Default);
                scopes
            }
        }
    }

    /// Every list key that could decide this viewer's menu, in Telegram's order of precedence:
    /// for each scope (most specific first), its list in the viewer's language, then its list
    /// for any language.
    pub fn candidates(&self) -> Vec<ListKey> {
        let mut keys = Vec::with_capacity(12);
        for scope in self.scopes() {
            if let Some(lang) = self.language {
                keys.push(ListKey::new(scope.clone(), Some(lang)));
            }
            keys.push(ListKey::new(scope, None));
        }
        keys
    }

    /// The list Telegram shows this viewer: the first candidate that is set.
    /// `None` means no list applies and the menu is empty.
    pub fn effective<'a, F>(&self, is_set: F) -> Option<ListKey>
    where
        F: Fn(&ListKey) -> bool + 'a,
    {
        self.candidates().into_iter().find(|key| is_set(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(scope: Scope, lang: Option<&str>) -> ListKey {
        ListKey::new(scope, lang.map(|l| Lang::parse(l).unwrap()))
    }

    #[test]
    fn storage_keys_round_trip() {
        let keys = [
            key(Scope::Default, None),
            key(Scope::AllChatAdministrators, Some("ru")),
            key(
                Scope::ChatMember {
                    chat_id: ChatRef::Id(-100123),
                    user_id: 7,
                },
                None,
            ),
            key(
                Scope::Chat {
                    chat_id: ChatRef::Username("@chan|nel".into()),
                },
                Some("en"),
            ),
        ];
        for k in keys {
            assert_eq!(ListKey::from_storage_key(&k.storage_key()), Some(k));
        }
        assert_eq!(ListKey::from_storage_key("nonsense"), None);
    }

    /// Telegram's documented order for private chats, written out literally so the test does
    /// not share code with the implementation.
    fn private_table(chat: i64) -> Vec<ListKey> {
        let c = ChatRef::Id(chat);
        vec![
            key(Scope::Chat { chat_id: c.clone() }, Some("ru")),
            key(Scope::Chat { chat_id: c }, None),
            key(Scope::AllPrivateChats, Some("ru")),
            key(Scope::AllPrivateChats, None),
            key(Scope::Default, Some("ru")),
            key(Scope::Default, None),
        ]
    }

    fn group_table(chat: i64, user: i64, admin: bool) -> Vec<ListKey> {
        let c = ChatRef::Id(chat);
        let mut t = vec![
            key(
                Scope::ChatMember {
                    chat_id: c.clone(),
                    user_id: user,
                },
                Some("ru"),
            ),
            key(
                Scope::ChatMember {
                    chat_id: c.clone(),
                    user_id: user,
                },
                None,
            ),
        ];
        if admin {
            t.push(key(
                Scope::ChatAdministrators { chat_id: c.clone() },
                Some("ru"),
            ));
            t.push(key(Scope::ChatAdministrators { chat_id: c.clone() }, None));
        }
        t.push(key(Scope::Chat { chat_id: c.clone() }, Some("ru")));
        t.push(key(Scope::Chat { chat_id: c }, None));
        if admin {
            t.push(key(Scope::AllChatAdministrators, Some("ru")));
            t.push(key(Scope::AllChatAdministrators, None));
        }
        t.push(key(Scope::AllGroupChats, Some("ru")));
        t.push(key(Scope::AllGroupChats, None));
        t.push(key(Scope::Default, Some("ru")));
        t.push(key(Scope::Default, None));
        t
    }

    /// Lists that never apply to the viewer: other chats, other users, other languages,
    /// admin scopes for non-admins, group scopes in private chats and vice versa.
    fn decoys(chat: i64, user: i64) -> Vec<ListKey> {
        let other = ChatRef::Id(chat + 1);
        let c = ChatRef::Id(chat);
        let mut d = vec![
            key(
                Scope::Chat {
                    chat_id: other.clone(),
                },
                None,
            ),
            key(
                Scope::ChatMember {
                    chat_id: c.clone(),
                    user_id: user + 1,
                },
                None,
            ),
            key(
                Scope::ChatMember {
                    chat_id: other.clone(),
                    user_id: user,
                },
                None,
            ),
            key(Scope::ChatAdministrators { chat_id: other }, None),
        ];
        for scope in [
            Scope::Default,
            Scope::AllPrivateChats,
            Scope::AllGroupChats,
            Scope::Chat { chat_id: c },
        ] {
            d.push(key(scope, Some("en")));
        }
        d
    }

    /// Every subset of the applicable lists, plus every decoy, must yield the first applicable
    /// list of the documented table.
    fn check_exhaustively(viewer: &Viewer, table: &[ListKey], extra_decoys: &[ListKey]) {
        let mut decoys = decoys(viewer.chat_id, viewer.user_id);
        decoys.extend_from_slice(extra_decoys);
        for mask in 0u32..(1 << table.len()) {
            let mut set: HashSet<ListKey> = decoys.iter().cloned().collect();
            for (i, k) in table.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    set.insert(k.clone());
                }
            }
            let expected = table
                .iter()
                .enumerate()
                .find(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| k.clone());
            let got = viewer.effective(|k| set.contains(k));
            assert_eq!(got, expected, "viewer {viewer:?}, mask {mask:#b}");
        }
    }

    #[test]
    fn private_chat_precedence_is_telegrams() {
        let viewer = Viewer {
            chat_type: ChatType::Private,
            chat_id: 10,
            user_id: 10,
            language: Lang::parse("ru"),
            is_admin: false,
        };
        // Group-only scopes never apply in a private chat.
        let group_decoys = vec![
            key(Scope::AllGroupChats, None),
            key(Scope::AllChatAdministrators, None),
            key(
                Scope::ChatMember {
                    chat_id: ChatRef::Id(10),
                    user_id: 10,
                },
                None,
            ),
        ];
        check_exhaustively(&viewer, &private_table(10), &group_decoys);
    }

    #[test]
    fn group_precedence_for_members_and_admins() {
        for chat_type in [ChatType::Group, ChatType::Supergroup] {
            for is_admin in [false, true] {
                let viewer = Viewer {
                    chat_type,
                    chat_id: -100,
                    user_id: 7,
                    language: Lang::parse("ru"),
                    is_admin,
                };
                let mut extra = vec![key(Scope::AllPrivateChats, None)];
                if !is_admin {
                    // Admin scopes exist but must not reach a plain member.
                    extra.push(key(Scope::AllChatAdministrators, None));
                    extra.push(key(
                        Scope::ChatAdministrators {
                            chat_id: ChatRef::Id(-100),
                        },
                        None,
                    ));
                }
                check_exhaustively(&viewer, &group_table(-100, 7, is_admin), &extra);
            }
        }
    }

    #[test]
    fn unknown_language_sees_only_language_free_lists() {
        let viewer = Viewer {
            chat_type: ChatType::Private,
            chat_id: 1,
            user_id: 1,
            language: None,
            is_admin: false,
        };
        let set: HashSet<ListKey> = [
            key(Scope::AllPrivateChats, Some("en")),
            key(Scope::Default, None),
        ]
        .into();
        assert_eq!(
            viewer.effective(|k| set.contains(k)),
            Some(key(Scope::Default, None))
        );
        let empty: HashSet<ListKey> = HashSet::new();
        assert_eq!(viewer.effective(|k| empty.contains(k)), None);
    }

    #[test]
    fn user_language_tags_are_normalised() {
        assert_eq!(Lang::from_user_tag("pt-br").unwrap().as_str(), "pt");
        assert_eq!(Lang::from_user_tag("EN").unwrap().as_str(), "en");
        assert_eq!(Lang::from_user_tag("zh_Hans").unwrap().as_str(), "zh");
        assert!(Lang::from_user_tag("").is_none());
        assert!(Lang::from_user_tag("eng").is_none());
        assert!(Lang::parse("e1").is_none());
    }

    #[test]
    fn scope_serialises_as_bot_api_object() {
        let s = Scope::ChatMember {
            chat_id: ChatRef::Username("@shop".into()),
            user_id: 5,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"type":"chat_member","chat_id":"@shop","user_id":5}"#
        );
        let back: Scope = serde_json::from_str(r#"{"type":"chat","chat_id":-100}"#).unwrap();
        assert_eq!(
            back,
            Scope::Chat {
                chat_id: ChatRef::Id(-100)
            }
        );
        assert_eq!(
            serde_json::to_string(&Scope::AllPrivateChats).unwrap(),
            r#"{"type":"all_private_chats"}"#
        );
    }

    #[test]
    fn aliases_map_to_canonical_kinds() {
        assert_eq!(
            ScopeKind::parse("all_chat_admins"),
            Some((
                ScopeKind::AllChatAdministrators,
                Some("all_chat_administrators")
            ))
        );
        assert_eq!(
            ScopeKind::parse("chat_admins").unwrap().0,
            ScopeKind::ChatAdministrators
        );
        assert_eq!(
            ScopeKind::parse("chat_member"),
            Some((ScopeKind::ChatMember, None))
        );
        assert_eq!(ScopeKind::parse("private"), None);
    }
}
