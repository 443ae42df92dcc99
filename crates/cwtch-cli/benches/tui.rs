//! The TUI's conversation view with a long history open (20 000 messages read, every 7th a
//! quoted reply): the lines of one frame of a 118×38 window, drawn for the messages shown
//! (what the TUI does), against drawing every message read (what it did before, and what
//! `Home`, scrolled to the oldest, still does), measured in the same run. Every key pressed
//! and every event redraws a frame.

use std::hint::black_box;

use cwtch_cli::benching::History;

const MESSAGES: usize = 20_000;
const WIDTH: usize = 118;
const ROWS: usize = 38;

fn main() {
    let mut c = benchkit::criterion();
    let h = History::new(MESSAGES);
    // The baseline draws every message; the window only what fills it (and a message more).
    assert!(h.lines(WIDTH, ROWS, true) > MESSAGES);
    assert!((ROWS..ROWS + 10).contains(&h.lines(WIDTH, ROWS, false)));
    let mut g = c.benchmark_group("tui_frame_lines");
    g.sample_size(20);
    g.bench_function("every_message", |b| {
        b.iter(|| black_box(h.lines(WIDTH, ROWS, true)))
    });
    g.bench_function("shown_messages", |b| {
        b.iter(|| black_box(h.lines(WIDTH, ROWS, false)))
    });
    g.finish();
    c.final_summary();
    benchkit::report(&[(
        "tui_frame_lines/shown_messages",
        "tui_frame_lines/every_message",
    )]);
}
