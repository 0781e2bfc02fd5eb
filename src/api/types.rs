//! Request and response bodies, as OwnID sends and expects them.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{Example, ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object, Union};
use serde_json::Value;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// The longest login id accepted, in characters, after normalization.
pub const MAX_LOGIN_ID_CHARS: usize = 320;

/// The README's walkthrough user, so that Swagger UI's examples work on the user added there.
const EXAMPLE_LOGIN_ID: &str = "alice@example.com";
const EXAMPLE_OWNID_DATA: &str = "eyJkZXZpY2VzIjpbeyJpZCI6ImFiYyIsInB1YmxpY0tleSI6Ii4uLiJ9XX0=";

/// A JSON string, and only a string. poem-openapi's `String` also accepts numbers and booleans
/// (turning `42` into `"42"`); OwnID's fields are strings, and ownIdData must be stored exactly
/// as sent, so anything else is a 400.
fn json_string<T: Type>(value: Option<Value>) -> Result<String, ParseError<T>> {
    match value {
        Some(Value::String(text)) => Ok(text),
        other => Err(ParseError::expected_type(other.unwrap_or_default())),
    }
}

/// The `pattern` the document declares for `ownIdData`: anything but U+0000, which
/// [`check_ownid_data`] refuses (400) on every backend.
const OWNID_DATA_PATTERN: &str = "^[^\\u0000]*$";

/// `ownIdData` as sent: a JSON string (see [`json_string`]). U+0000 is refused by
/// [`check_ownid_data`] when the operation runs, with its own message; the document declares it
/// with a `pattern`, so that a client generated from it does not send what the server refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnIdDataText(pub String);

impl Type for OwnIdDataText {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = Some(OWNID_DATA_PATTERN.into());
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for OwnIdDataText {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        json_string(value).map(OwnIdDataText)
    }
}

impl ToJSON for OwnIdDataText {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

impl From<&str> for OwnIdDataText {
    fn from(text: &str) -> Self {
        OwnIdDataText(text.to_owned())
    }
}

/// `loginId` as sent: a JSON string of 1 to 320 characters without control or invisible
/// characters. The checks are written out rather than left to a `pattern` validator, which
/// poem-openapi compiles into a regex on every request (a fifth of the server's CPU under
/// load); the document still declares the same `minLength`, `maxLength` and `pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginId(pub String);

/// The `pattern` the document declares for `loginId`, which [`LoginId`] enforces by hand: no
/// control characters (Unicode category Cc) and none of the invisible characters of
/// [`InvalidLoginId::InvisibleCharacter`] (format characters, other default-ignorable code
/// points, line and paragraph separators, spaces but U+0020) of the Basic Multilingual Plane. A
/// pattern without ECMAScript's `u` flag cannot name characters beyond it; the server refuses
/// those (U+110BD, U+1D173–U+1D17A, the tags U+E0001–U+E007F, the variation selectors
/// U+E0100–U+E01EF, ...) too. `the_declared_pattern_refuses_what_the_check_refuses_in_the_bmp`
/// compares the two for every character of the plane.
const LOGIN_ID_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u00A0\\u00AD\\u034F\\u0600-\\u0605\\u061C\\u06DD\\u070F\\u0890-\\u0891\\u08E2\\u115F-\\u1160\\u1680\\u17B4-\\u17B5\\u180B-\\u180F\\u2000-\\u200F\\u2028-\\u202F\\u205F-\\u206F\\u3000\\u3164\\uFE00-\\uFE0F\\uFEFF\\uFFA0\\uFFF0-\\uFFFB]*$";

/// Why a login id is refused (SPEC §1: non-empty, at most 320 characters). Control characters
/// are refused too: no e-mail address or phone number has them, and they make logs and lookups
/// ambiguous. So are invisible characters: format characters (category Cf: U+200B ZERO WIDTH
/// SPACE, bidirectional controls such as U+202E RIGHT-TO-LEFT OVERRIDE), every other
/// `Default_Ignorable_Code_Point` (variation selectors U+FE00–U+FE0F, U+034F COMBINING GRAPHEME
/// JOINER, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, ...), the line and paragraph
/// separators U+2028 and U+2029, and every space but U+0020 (U+00A0 NO-BREAK SPACE, U+2000–U+200A,
/// U+202F, U+3000, ...: they print as a space or as nothing). Two ids that differ only by them
/// look the same in a log or a support tool, where one account could pass for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLoginId {
    #[error("loginId must not be empty")]
    Empty,
    #[error("loginId must be at most {MAX_LOGIN_ID_CHARS} characters")]
    TooLong,
    #[error("loginId must not contain control characters")]
    ControlCharacter,
    #[error(
        "loginId must not contain invisible or bidirectional characters, nor spaces other than U+0020"
    )]
    InvisibleCharacter,
}

/// Unicode 16.0's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt): characters a
/// renderer shows as nothing when it has no glyph for them. Most are category Cf, refused as such;
/// the others (Mn, Lo, unassigned) are refused by this list.
const DEFAULT_IGNORABLE: [(char, char); 17] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// A non-ASCII character a login id may not hold (see [`InvalidLoginId::InvisibleCharacter`]).
fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || DEFAULT_IGNORABLE
        .iter()
        .any(|&(start, end)| (start..=end).contains(&c))
}

/// The one check of a login id: on the value as sent (when the body is parsed) and again after
/// the configured normalization.
pub fn check_login_id(text: &str) -> Result<(), InvalidLoginId> {
    if text.is_empty() {
        return Err(InvalidLoginId::Empty);
    }
    if text.chars().nth(MAX_LOGIN_ID_CHARS).is_some() {
        return Err(InvalidLoginId::TooLong);
    }
    for c in text.chars() {
        // ASCII, the usual case, has control characters and nothing invisible (U+0020 is the
        // one space allowed): the Unicode tables are read for other characters only.
        if c.is_control() {
            return Err(InvalidLoginId::ControlCharacter);
        }
        if !c.is_ascii() && is_invisible(c) {
            return Err(InvalidLoginId::InvisibleCharacter);
        }
    }
    Ok(())
}

/// An ownIdData holding U+0000, which not every database can store (PostgreSQL's text types
/// refuse it): refused on every backend alike, so that a value accepted by one is accepted by
/// all and an import between them never stops on it (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ownIdData must not contain U+0000 (NUL), which not every database can store")]
pub struct NulInOwnIdData;

/// The check of an ownIdData's characters, for the endpoint and `import` alike.
pub fn check_ownid_data(value: &str) -> Result<(), NulInOwnIdData> {
    if value.contains('\0') {
        return Err(NulInOwnIdData);
    }
    Ok(())
}

impl Type for LoginId {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.min_length = Some(1);
        schema.max_length = Some(MAX_LOGIN_ID_CHARS);
        schema.pattern = Some(LOGIN_ID_PATTERN.into());
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for LoginId {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let text = json_string(value)?;
        check_login_id(&text).map_err(|err| ParseError::custom(err.to_string()))?;
        Ok(LoginId(text))
    }
}

impl ToJSON for LoginId {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

impl From<&str> for LoginId {
    fn from(text: &str) -> Self {
        LoginId(text.to_owned())
    }
}

/// `setOwnIDDataByLoginId`: store OwnID's data for a user.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct SetOwnIdDataRequest {
    /// The user's unique login identifier, usually an e-mail address or a phone number.
    #[oai(rename = "loginId")]
    pub login_id: LoginId,
    /// OwnID's opaque record of the user's enrolled devices (about 1–5 KB). Stored byte for
    /// byte; a later set overwrites it.
    #[oai(rename = "ownIdData")]
    pub ownid_data: OwnIdDataText,
}

impl Example for SetOwnIdDataRequest {
    fn example() -> Self {
        SetOwnIdDataRequest {
            login_id: EXAMPLE_LOGIN_ID.into(),
            ownid_data: EXAMPLE_OWNID_DATA.into(),
        }
    }
}

/// `getOwnIDDataByLoginId`: read OwnID's data for a user.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct GetOwnIdDataRequest {
    /// The user's unique login identifier, usually an e-mail address or a phone number.
    #[oai(rename = "loginId")]
    pub login_id: LoginId,
}

impl Example for GetOwnIdDataRequest {
    fn example() -> Self {
        GetOwnIdDataRequest {
            login_id: EXAMPLE_LOGIN_ID.into(),
        }
    }
}

/// Where the session will be used: `browser` or `mobile`; it may select a different token
/// lifetime. Optional in a request: absent, or `null` (which clients built on pydantic and the
/// like send for an unset field), means no session type.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SessionTypeParam {
    Browser,
    Mobile,
}

/// `getSessionByLoginId`: issue a session token for a user OwnID has authenticated.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct GetSessionRequest {
    /// The user's unique login identifier, usually an e-mail address or a phone number.
    #[oai(rename = "loginId")]
    pub login_id: LoginId,
    // No doc comment: a description beside a `$ref` makes poem-openapi wrap it in `allOf`, which
    // openapi-python-client refuses ("Cannot take allOf a non-object") and then drops the whole
    // operation. The enum's own description says what the field means.
    #[oai(rename = "sessionType")]
    pub session_type: Option<SessionTypeParam>,
}

impl Example for GetSessionRequest {
    fn example() -> Self {
        GetSessionRequest {
            login_id: EXAMPLE_LOGIN_ID.into(),
            session_type: Some(SessionTypeParam::Browser),
        }
    }
}

/// The user's stored ownIdData.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(example)]
pub struct OwnIdData {
    /// The value last stored by `setOwnIDDataByLoginId`, exactly as sent. Non-empty in the
    /// standard response mode; the legacy mode answers `""` for a user without data.
    #[oai(rename = "ownIdData")]
    pub ownid_data: String,
}

impl Example for OwnIdData {
    fn example() -> Self {
        OwnIdData {
            ownid_data: EXAMPLE_OWNID_DATA.into(),
        }
    }
}

/// A session token. OwnID passes this whole object to the web page's `onLogin` callback.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(example)]
pub struct SessionToken {
    /// A signed JWT with `sub`, `iat`, `exp` and `jti` (and `iss`/`aud` when configured).
    pub token: String,
    /// When the token expires, in Unix seconds (the token's `exp`).
    #[oai(rename = "expiresAt")]
    pub expires_at: u64,
}

impl Example for SessionToken {
    fn example() -> Self {
        SessionToken {
            token: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJl".into(),
            expires_at: 1_717_003_600,
        }
    }
}

/// The legacy response mode's answer for an unknown user, sent with status 200.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(example)]
pub struct LegacyError {
    /// Always 404.
    #[oai(rename = "errorCode")]
    pub error_code: u16,
    /// Always `User not found`.
    #[oai(rename = "errorMessage")]
    pub error_message: String,
}

impl LegacyError {
    pub fn user_not_found() -> Self {
        LegacyError {
            error_code: 404,
            error_message: "User not found".into(),
        }
    }
}

impl Example for LegacyError {
    fn example() -> Self {
        LegacyError::user_not_found()
    }
}

/// The 200 body of `getOwnIDDataByLoginId`: the data, or (legacy mode only) the not-found body.
#[derive(Union, Debug, Clone, PartialEq, Eq)]
#[oai(one_of)]
pub enum OwnIdDataResult {
    OwnIdData(OwnIdData),
    LegacyError(LegacyError),
}

/// The 200 body of `getSessionByLoginId`: the token, or (legacy mode only) the not-found body.
#[derive(Union, Debug, Clone, PartialEq, Eq)]
#[oai(one_of)]
pub enum SessionResult {
    SessionToken(SessionToken),
    LegacyError(LegacyError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranges of the `[^...]` class of [`LOGIN_ID_PATTERN`].
    fn pattern_ranges() -> Vec<(u32, u32)> {
        let class = LOGIN_ID_PATTERN
            .strip_prefix("^[^")
            .and_then(|rest| rest.strip_suffix("]*$"))
            .unwrap();
        // `str::is_empty`: poem-openapi's `Type` trait, in scope here, has an `is_empty` too.
        let points: Vec<&str> = class.split("\\u").filter(|p| !str::is_empty(p)).collect();
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < points.len() {
            let start = u32::from_str_radix(points[i].trim_end_matches('-'), 16).unwrap();
            if points[i].ends_with('-') {
                let end = u32::from_str_radix(points[i + 1], 16).unwrap();
                ranges.push((start, end));
                i += 2;
            } else {
                ranges.push((start, start));
                i += 1;
            }
        }
        ranges
    }

    #[test]
    fn the_declared_pattern_refuses_what_the_check_refuses_in_the_bmp() {
        let ranges = pattern_ranges();
        for code in 0..=0xFFFFu32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let declared = ranges
                .iter()
                .any(|&(start, end)| (start..=end).contains(&code));
            let refused = check_login_id(&format!("a{c}b")).is_err();
            assert_eq!(declared, refused, "U+{code:04X}");
        }
        for refused in ['\u{110BD}', '\u{1D173}', '\u{E0001}', '\u{E007F}'] {
            assert_eq!(
                check_login_id(&format!("a{refused}")),
                Err(InvalidLoginId::InvisibleCharacter)
            );
        }
        // Red team, round 3 (R7): invisible characters of other categories, and spaces.
        for refused in [
            '\u{FE0F}',
            '\u{034F}',
            '\u{3164}',
            '\u{115F}',
            '\u{FFA0}',
            '\u{E0100}',
            '\u{00A0}',
            '\u{2028}',
            '\u{2029}',
            '\u{3000}',
            '\u{202F}',
        ] {
            assert_eq!(
                check_login_id(&format!("alice@example.com{refused}")),
                Err(InvalidLoginId::InvisibleCharacter),
                "U+{:04X}",
                refused as u32
            );
        }
        assert_eq!(check_login_id("zoë😀@exämple.com"), Ok(()));
        assert_eq!(check_login_id("+1 555 0100"), Ok(()));
    }
}
