//! What frames every tab: the header and PAUSED banner, the footer hints, the help overlay,
//! confirmations, the theme, shared view helpers, and the terminal session itself.

pub mod confirm;
pub mod footer;
pub mod header;
pub mod help;
pub mod terminal;
pub mod theme;
pub mod view;
