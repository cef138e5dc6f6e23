//! The envelope parser: never a panic; whatever it accepts has a valid id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zofhook_core::event;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = event::parse(data) {
        assert!(event::valid_id(&envelope.id));
        assert!(!envelope.kind.is_empty());
        assert!(envelope.object.is_object());
    }
});
