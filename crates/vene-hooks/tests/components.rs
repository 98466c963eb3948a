use vene_hooks::{Component, HookError, Site, Unit};

#[test]
fn every_component_round_trips_through_its_name() {
    for c in Component::ALL {
        let parsed: Component = c.as_str().parse().unwrap();
        assert_eq!(parsed, c);
        assert_eq!(c.to_string(), c.as_str());
    }
    assert_eq!(Component::ALL.len(), 16);
}

#[test]
fn unknown_component_lists_the_valid_ones() {
    let err = "block_outptu".parse::<Component>().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HookError::UnknownComponent { .. }));
    assert!(msg.contains("block_outptu"), "{msg}");
    assert!(msg.contains("head_attention_value_output"), "{msg}");
    assert!(msg.contains("attention_weight"), "{msg}");
}

#[test]
fn head_components_tap_their_full_component() {
    let heads: Vec<_> = Component::ALL.iter().filter(|c| c.is_head()).collect();
    assert_eq!(heads.len(), 4);
    assert_eq!(
        Component::HeadAttentionValueOutput.tap(),
        Component::AttentionValueOutput
    );
    assert_eq!(Component::HeadKeyOutput.tap(), Component::KeyOutput);
    assert_eq!(Component::HeadValueOutput.tap(), Component::ValueOutput);
    assert_eq!(Component::MlpOutput.tap(), Component::MlpOutput);
}

#[test]
fn units_parse_and_reject() {
    assert_eq!("h.pos".parse::<Unit>().unwrap(), Unit::HPos);
    assert_eq!("pos".parse::<Unit>().unwrap(), Unit::Pos);
    assert_eq!("h".parse::<Unit>().unwrap(), Unit::H);
    assert!(matches!(
        "t".parse::<Unit>(),
        Err(HookError::UnknownUnit(_))
    ));
}

#[test]
fn components_and_units_serialize_as_pyvene_strings() {
    let json = serde_json::to_string(&(Component::MlpActivation, Unit::HPos)).unwrap();
    assert_eq!(json, r#"["mlp_activation","h.pos"]"#);
    let back: (Component, Unit) = serde_json::from_str(&json).unwrap();
    assert_eq!(back, (Component::MlpActivation, Unit::HPos));
    assert!(serde_json::from_str::<Component>(r#""mlp_act""#).is_err());
    assert_eq!(
        Site::new(3, Component::KeyOutput).to_string(),
        "layer 3 key_output"
    );
}
