//! Lists decoded with their limit enforced while decoding, not after: postcard announces a
//! list's length before its elements, and a list of small elements (a sample kind is one byte on
//! the wire, hundreds in memory) could otherwise make a 1 MiB frame decode into hundreds of
//! megabytes before [`crate::validate`] gets to count them. The limits are those of
//! [`crate::validate`]; the wire format is unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};

/// Deserializes a `Vec<T>` of at most `MAX` elements, for `#[serde(deserialize_with)]`.
pub(crate) fn vec_at_most<'de, D, T, const MAX: usize>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(AtMost::<T, MAX>(PhantomData))
}

struct AtMost<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for AtMost<T, MAX> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {MAX} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let announced = seq.size_hint().unwrap_or(0);
        if announced > MAX {
            return Err(A::Error::invalid_length(announced, &self));
        }
        let mut v = Vec::with_capacity(announced);
        while let Some(x) = seq.next_element()? {
            if v.len() == MAX {
                return Err(A::Error::invalid_length(MAX + 1, &self));
            }
            v.push(x);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Two {
        #[serde(deserialize_with = "super::vec_at_most::<_, _, 2>")]
        v: Vec<u8>,
    }

    #[test]
    fn longer_lists_are_refused_by_their_announced_length() {
        let ok = Two { v: vec![1, 2] };
        let bytes = postcard::to_stdvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Two>(&bytes).unwrap(), ok);
        let three = postcard::to_stdvec(&vec![1u8, 2, 3]).unwrap();
        let err = postcard::from_bytes::<Two>(&three).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
        // A huge announced length with no elements behind it fails the same way, at once.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(postcard::from_bytes::<Two>(&huge).is_err());
    }
}
