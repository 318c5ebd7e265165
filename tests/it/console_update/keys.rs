//! The action table behind `update`: keys per scope and role, what `--read-only` hides, and
//! every bound action applied everywhere.

use super::*;

#[test]
fn every_bound_action_runs_on_every_tab_without_panicking() {
    for user in [owner(), member(), oncall()] {
        for tab in Tab::ALL {
            for spec in ACTIONS {
                let mut s = on_tab(user.clone(), false, tab);
                let _ = update(&mut s, spec.action.clone());
                let _ = update(&mut s, Action::Back);
                let mut empty =
                    AppState::new(console_fixtures::session(user.clone(), false), now());
                empty.tab = tab;
                let _ = update(&mut empty, spec.action.clone());
            }
        }
    }
}

#[test]
fn keys_follow_the_table_and_hide_what_the_role_cannot_do() {
    let owner_state = on_tab(owner(), false, Tab::Queue);
    assert_eq!(
        keymap::action_for_key(&owner_state, key('P')),
        Some(Action::TogglePause)
    );
    assert_eq!(
        keymap::action_for_key(&owner_state, key('r')),
        Some(Action::RetryOne)
    );
    assert_eq!(
        keymap::action_for_key(
            &owner_state,
            KeyEvent::new(KeyCode::Char('A'), KeyModifiers::SHIFT)
        ),
        Some(Action::RetryAll)
    );
    assert_eq!(
        keymap::action_for_key(&owner_state, key('4')),
        Some(Action::GoTab(Tab::Queue))
    );

    let member_state = on_tab(member(), false, Tab::Queue);
    for c in ['P', 'r', 'R', 'A', ' '] {
        assert_eq!(
            keymap::action_for_key(&member_state, key(c)),
            None,
            "member pressed {c}"
        );
    }
    let footer: Vec<&str> = keymap::footer_hints(&member_state)
        .iter()
        .map(|s| s.label)
        .collect();
    assert!(
        !footer.contains(&"P") && !footer.contains(&"r"),
        "{footer:?}"
    );
    let mut delivery = on_tab(member(), false, Tab::Delivery);
    assert_eq!(keymap::action_for_key(&delivery, key('m')), None);
    delivery.session.user = oncall();
    assert_eq!(
        keymap::action_for_key(&delivery, key('P')),
        Some(Action::TogglePause)
    );

    let mut read_only = on_tab(owner(), false, Tab::Queue);
    read_only.session.read_only = true;
    assert!(
        keymap::available(&read_only).all(|s| !s.mutates),
        "read-only hides every change"
    );
    for c in ['P', 'r', 'R', 'A', ' '] {
        assert_eq!(
            keymap::action_for_key(&read_only, key(c)),
            None,
            "read-only pressed {c}"
        );
    }
    let help: String =
        herald::console::help::lines(&read_only, herald::console::theme::Theme::plain())
            .iter()
            .map(|l| l.to_string())
            .collect();
    assert!(!help.contains("retry") && !help.contains("pause"), "{help}");
}

#[test]
fn prompts_take_text_and_ctrl_c_still_quits() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    feed(&mut s, Action::Filter);
    let typed = keymap::action_for_key(&s, key('q'));
    assert_eq!(
        typed,
        Some(Action::Edit(InputRequest::InsertChar('q'))),
        "q types in a prompt"
    );
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(keymap::action_for_key(&s, ctrl_c), Some(Action::Quit));
    assert_eq!(
        keymap::action_for_key(&s, key('r')),
        Some(Action::Edit(InputRequest::InsertChar('r'))),
        "tab keys do not reach a prompt"
    );
}
