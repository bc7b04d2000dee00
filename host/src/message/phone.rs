//! E.164 phone numbers: parsing, the country calling code, and the shard a number lands on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A number in E.164 form, stored with its leading `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("must start with + and the country calling code, such as +6591234567")]
    MissingPlus,
    #[error("must hold only digits after the +")]
    NotDigits,
    #[error("must have 8 to 15 digits, has {0}")]
    Length(usize),
    #[error("country calling code {0} is not assigned")]
    UnknownCountry(String),
}

/// Assigned country calling codes (ITU-T E.164), without the leading `+`.
const CALLING_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57, 58, 60,
    61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211, 212, 213, 216, 218, 220, 221, 222, 223,
    224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246,
    247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290,
    291, 297, 298, 299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377, 378,
    379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 590,
    591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 685,
    686, 687, 688, 689, 690, 691, 692, 850, 852, 853, 855, 856, 880, 886, 960, 961, 962, 963, 964, 965, 966, 967, 968,
    970, 971, 972, 973, 974, 975, 976, 977, 992, 993, 994, 995, 996, 998,
];

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let digits = input.strip_prefix('+').ok_or(PhoneError::MissingPlus)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::NotDigits);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::Length(digits.len()));
        }
        let number = Self(input.to_owned());
        if number.country_code().is_none() {
            return Err(PhoneError::UnknownCountry(digits[..3].to_owned()));
        }
        Ok(number)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as Meta's `wa_id` and `recipient_id` carry them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The country calling code: the shortest assigned prefix (codes are prefix-free).
    pub fn country_code(&self) -> Option<u16> {
        let digits = self.digits();
        (1..=3).find_map(|length| {
            let code: u16 = digits.get(..length)?.parse().ok()?;
            CALLING_CODES.binary_search(&code).ok().map(|_| code)
        })
    }

    /// shard = f(country calling code, last four digits) mod `shards`: one recipient always
    /// lands on one shard, and numbers spread evenly within a country.
    pub fn shard(&self, shards: u16) -> u16 {
        let digits = self.digits();
        let last_four: u64 = digits[digits.len().saturating_sub(4)..].parse().unwrap_or(0);
        let country = u64::from(self.country_code().unwrap_or(0));
        // A multiplicative mix so neighbouring numbers and countries do not pile onto neighbouring shards.
        let mixed = (country * 10_000 + last_four).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((mixed >> 32) % u64::from(shards.max(1))) as u16
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calling_codes_are_sorted_for_binary_search() {
        assert!(CALLING_CODES.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn parses_and_finds_country() {
        let number = PhoneNumber::parse("+6591234567").unwrap();
        assert_eq!(number.country_code(), Some(65));
        assert_eq!(number.digits(), "6591234567");
        assert_eq!(PhoneNumber::parse("+14155550100").unwrap().country_code(), Some(1));
        assert_eq!(PhoneNumber::parse("+4915112345678").unwrap().country_code(), Some(49));
        assert_eq!(PhoneNumber::parse("+971501234567").unwrap().country_code(), Some(971));
    }

    #[test]
    fn refuses_bad_numbers() {
        assert_eq!(PhoneNumber::parse("6591234567"), Err(PhoneError::MissingPlus));
        assert_eq!(PhoneNumber::parse("+65-9123-4567"), Err(PhoneError::NotDigits));
        assert_eq!(PhoneNumber::parse("+6512"), Err(PhoneError::Length(4)));
        assert_eq!(PhoneNumber::parse("+1234567890123456"), Err(PhoneError::Length(16)));
        assert!(matches!(
            PhoneNumber::parse("+80012345678"),
            Err(PhoneError::UnknownCountry(_))
        ));
    }

    #[test]
    fn shard_is_stable_and_spreads() {
        let number = PhoneNumber::parse("+6591234567").unwrap();
        assert_eq!(number.shard(256), number.shard(256));
        let mut seen = std::collections::HashSet::new();
        for n in 0..2_000u32 {
            let number = PhoneNumber::parse(&format!("+65912{n:05}")).unwrap();
            seen.insert(number.shard(256));
        }
        assert!(seen.len() > 200, "only {} shards used", seen.len());
    }
}
