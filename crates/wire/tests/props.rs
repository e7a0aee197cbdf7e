use kdns_wire::{check_query, Message, Name};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(&bytes);
        let _ = check_query(&bytes);
    }

    #[test]
    fn mutated_valid_query_never_panics(pos in 0usize..40, val in any::<u8>()) {
        let mut m = Message { id: 1, ..Default::default() };
        m.questions.push(kdns_wire::Question { name: Name::from_ascii("a.example.org.").unwrap(), qtype: 1, qclass: 1 });
        m.edns = Some(kdns_wire::Edns::new(1232));
        let mut wire = m.to_vec();
        if pos < wire.len() { wire[pos] = val; }
        if let Ok(decoded) = Message::decode(&wire) {
            // whatever decodes must re-encode and decode to the same message
            prop_assert_eq!(Message::decode(&decoded.to_vec()).unwrap(), decoded);
        }
    }

    #[test]
    fn names_round_trip(labels in proptest::collection::vec("[a-zA-Z0-9-]{1,20}", 0..8)) {
        let text = if labels.is_empty() { ".".to_string() } else { format!("{}.", labels.join(".")) };
        let n = Name::from_ascii(&text).unwrap();
        prop_assert_eq!(n.to_string(), text);
        prop_assert_eq!(Name::from_wire(n.as_wire()).unwrap(), n);
    }
}
