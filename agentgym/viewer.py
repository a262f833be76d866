"""``agentgym replay FILE``: an interactive terminal viewer for episode files (Textual).

Screens: the episode list (sortable, filterable, lazily loaded), one episode turn by turn,
a group side by side with the shared prefix and the divergence points marked, and help.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from agentgym.episode_index import EpisodeIndex, Summary
from agentgym.records import Episode
from agentgym.replay import advantage_style, render_ending, render_header, render_turn

PAGE = 500
SORTS: tuple[tuple[str, Any], ...] = (
    ("file order", lambda s: s.line),
    ("return", lambda s: -s.total_reward),
    ("turns", lambda s: -s.turns),
    ("success", lambda s: not s.success),
    ("group", lambda s: (s.group_id, s.line)),
)
HELP = """\
[b]Episode list[/b]
  enter      open the episode          /          filter (env: group: policy: run: success: text)
  s          next sort order           ] [        next / previous page
  g          group view of the row     q          quit

[b]Episode[/b]
  j / down   next turn                 k / up     previous turn
  n          next episode              p          previous episode
  f          first failing/invalid turn
  t          show / fold thinking      g          group view
  escape     back

[b]Group[/b]  escape back
"""


def matches(summary: Summary, query: str) -> bool:
    """Whether a row passes a filter like ``env:Search success:no group:g1 capital``."""
    for word in query.split():
        key, sep, value = word.partition(":")
        if sep and key == "env":
            ok = value.lower() in summary.env_id.lower()
        elif sep and key == "group":
            ok = value == summary.group_id
        elif sep and key == "policy":
            ok = value == summary.policy
        elif sep and key == "run":
            ok = value == summary.run_id
        elif sep and key == "success":
            ok = summary.success == (value.lower() in ("yes", "true", "1"))
        else:
            ok = word.lower() in summary.text or word.lower() in summary.task_id.lower()
        if not ok:
            return False
    return True


class HelpScreen(ModalScreen):
    """The keys."""

    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(Text.from_markup(HELP), id="help")


class EpisodeScreen(Screen):
    """One episode, turn by turn."""

    BINDINGS: ClassVar = [
        Binding("j,down", "turn(1)", "Next turn"), Binding("k,up", "turn(-1)", "Prev turn"),
        Binding("n", "episode(1)", "Next episode"), Binding("p", "episode(-1)", "Prev episode"),
        Binding("f", "first_failure", "First failure"), Binding("t", "thoughts", "Thinking"),
        Binding("g", "group", "Group"), Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, index: EpisodeIndex, position: int) -> None:
        super().__init__()
        self.index, self.position = index, position
        self.current_turn, self.show_thoughts = 0, False
        self.episode: Episode = index.episode(position)

    def compose(self) -> ComposeResult:
        yield Header()
        yield VerticalScroll(id="turns")
        yield Footer()

    async def on_mount(self) -> None:
        await self.refresh_turns()

    async def refresh_turns(self) -> None:
        box = self.query_one("#turns", VerticalScroll)
        await box.remove_children()
        self.title = f"episode {self.position}: {self.episode.task_id}"
        widgets = [Static(render_header(self.episode), classes="header")]
        for turn in self.episode.turns:
            classes = "turn current" if turn.index == self.current_turn else "turn"
            widgets.append(Static(render_turn(turn, self.episode, self.show_thoughts),
                                  id=f"turn-{turn.index}", classes=classes))
        widgets.append(Static(render_ending(self.episode)))
        await box.mount_all(widgets)
        self.call_after_refresh(self.scroll_to_turn)

    def scroll_to_turn(self) -> None:
        if self.episode.turns:
            self.query_one(f"#turn-{self.current_turn}").scroll_visible(top=True)

    def select_turn(self, turn: int) -> None:
        if not self.episode.turns:
            return
        turn = max(0, min(turn, len(self.episode.turns) - 1))
        self.query_one(f"#turn-{self.current_turn}").remove_class("current")
        self.current_turn = turn
        self.query_one(f"#turn-{turn}").add_class("current")
        self.scroll_to_turn()

    def action_turn(self, step: int) -> None:
        self.select_turn(self.current_turn + step)

    def action_first_failure(self) -> None:
        bad = [t.index for t in self.episode.turns
               if not t.action_valid or (t.advantage is not None and t.advantage < 0)]
        if bad:
            self.select_turn(bad[0])
        else:
            self.notify("No invalid or negatively credited turn in this episode.")

    async def action_episode(self, step: int) -> None:
        target = self.position + step
        while 0 <= target < len(self.index) and self.index.summary(target).corrupt:
            target += step
        if 0 <= target < len(self.index):
            self.position, self.current_turn = target, 0
            self.episode = self.index.episode(target)
            await self.refresh_turns()

    async def action_thoughts(self) -> None:
        self.show_thoughts = not self.show_thoughts
        await self.refresh_turns()

    def action_group(self) -> None:
        if self.episode.group_id:
            self.app.push_screen(GroupScreen(self.index, self.episode.group_id))


class GroupScreen(Screen):
    """The episodes of one group side by side: shared prefix dimmed, divergence marked."""

    BINDINGS: ClassVar = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, index: EpisodeIndex, group_id: str) -> None:
        super().__init__()
        self.group_id = group_id
        self.episodes = [index.episode(i) for i in index.group(group_id)]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.summary(), id="group-summary")
        with Horizontal(id="group"):
            for column in self.columns():
                yield VerticalScroll(Static(column), classes="group-column")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"group {self.group_id}: {len(self.episodes)} episodes"

    def shared_prefix(self) -> int:
        """How many first turns every episode of the group took identically."""
        keys = [[(t.state_key, t.parsed_action) for t in e.turns] for e in self.episodes]
        length = 0
        while all(len(k) > length for k in keys) and len({k[length] for k in keys}) == 1:
            length += 1
        return length

    def branch_points(self) -> dict[int, tuple[int, int]]:
        """For a tree group: each branching episode's ``(parent's column, branch turn)``."""
        column = {e.episode_id: i for i, e in enumerate(self.episodes)}
        points = {}
        for i, episode in enumerate(self.episodes):
            link = episode.metadata.get("tree") or {}
            if link.get("parent") in column:
                points[i] = (column[link["parent"]], int(link["branch_turn"]))
        return points

    def summary(self) -> Text:
        """Shared prefix, and how many edges are shared by several episodes."""
        shared = self.shared_prefix()
        edges: dict[Any, set[int]] = {}
        for i, episode in enumerate(self.episodes):
            for t in episode.turns:
                edges.setdefault((t.state_key, t.parsed_action, t.next_state_key), set()).add(i)
        common = sum(len(v) > 1 for v in edges.values())
        wins = sum(e.outcome.success for e in self.episodes)
        tree = f"; a tree with {len(self.branch_points())} branches" \
            if self.branch_points() else ""
        return Text(f"{len(self.episodes)} episodes, {wins} successful; shared prefix: {shared} "
                    f"turns; {common} of {len(edges)} distinct steps are taken by more than one "
                    f"episode{tree}")

    def columns(self) -> list[Text]:
        """One column of actions per episode."""
        shared, points = self.shared_prefix(), self.branch_points()
        out = []
        for i, episode in enumerate(self.episodes):
            verdict = "success" if episode.outcome.success else "failure"
            text = Text(f"#{i} {verdict}  return {episode.outcome.total_reward:+.3g}\n",
                        style="green" if episode.outcome.success else "red")
            parent, branch = points.get(i, (None, -1))
            for t in episode.turns:
                style = "dim" if t.index < max(shared, branch) else (
                    "bold yellow" if t.index in (shared, branch) else "")
                marker = (f"├ branches from #{parent} " if t.index == branch else
                          "├ diverges " if t.index == shared else "")
                text.append(f"{t.index:>2} {marker}{t.parsed_action or '(invalid)'}", style=style)
                if t.advantage is not None:
                    text.append(f"  {t.advantage:+.2f}", style=advantage_style(t.advantage))
                text.append("\n")
            out.append(text)
        return out


class ReplayApp(App):
    """Browse an episode file."""

    CSS = """
    .turn { margin: 0 0 1 0; }
    .current { border-left: thick $accent; }
    #filter { dock: top; display: none; }
    #filter.shown { display: block; }
    .group-column { width: 1fr; border: solid $primary; }
    #help { width: 80; height: auto; padding: 1 2; border: thick $accent; background: $panel; }
    HelpScreen { align: center middle; }
    """
    BINDINGS: ClassVar = [
        Binding("slash", "filter", "Filter"), Binding("s", "sort", "Sort"),
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
        Binding("g", "group", "Group"), Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, path: str, follow: bool = False) -> None:
        super().__init__()
        self.index = EpisodeIndex(path)
        self.follow, self.page, self.sort = follow, 0, 0
        self.query_text = ""
        self.rows: list[int] | None = None  # None: all rows in file order (nothing parsed)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: env:Search success:no group:ID policy:NAME run:ID words",
                    id="filter")
        yield DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "line", "env", "task", "group", "success", "return", "turns",
                          "note")
        self.fill()
        table.focus()
        if self.follow:
            self.set_interval(1.0, self.check_file)

    def visible_rows(self) -> list[int]:
        """The episode indices of the current page."""
        rows = self.rows if self.rows is not None else range(len(self.index))
        return list(rows[self.page * PAGE:(self.page + 1) * PAGE])

    def fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for i in self.visible_rows():
            s = self.index.summary(i)
            if s.corrupt:
                table.add_row(str(i), str(s.line), Text("corrupt line", style="bold red"),
                              Text(s.error[:80], style="red"), "", "", "", "", "skipped",
                              key=str(i))
                continue
            note = s.failed or (f"{s.invalid_turns} invalid" if s.invalid_turns else "")
            table.add_row(str(i), str(s.line), s.env_id, s.task_id, s.group_id,
                          Text("yes", style="green") if s.success else Text("no", style="red"),
                          f"{s.total_reward:+.3g}", str(s.turns), note, key=str(i))
        total = len(self.rows) if self.rows is not None else len(self.index)
        pages = max(1, -(-total // PAGE))
        corrupt = sum(1 for i in self.visible_rows() if self.index.summary(i).corrupt)
        self.title = f"{self.index.path.name}: {total} episodes"
        self.sub_title = (f"page {self.page + 1}/{pages}  sort: {SORTS[self.sort][0]}"
                          + (f"  filter: {self.query_text}" if self.query_text else "")
                          + (f"  {corrupt} corrupt line(s) skipped" if corrupt else ""))

    def recompute(self) -> None:
        if not self.query_text and self.sort == 0:
            self.rows = None
        else:
            rows = [i for i, s in enumerate(self.index.summaries())
                    if not s.corrupt and matches(s, self.query_text)]
            key = SORTS[self.sort][1]
            self.rows = sorted(rows, key=lambda i: key(self.index.summary(i)))
        self.page = 0
        self.fill()

    def selected(self) -> int | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return int(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        i = int(str(event.row_key.value))
        if self.index.summary(i).corrupt:
            self.notify(f"Line {self.index.summary(i).line} is corrupt and was skipped: "
                        f"{self.index.summary(i).error}", severity="warning")
            return
        self.push_screen(EpisodeScreen(self.index, i))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        event.input.remove_class("shown")
        self.query_one(DataTable).focus()
        self.recompute()

    def action_sort(self) -> None:
        self.sort = (self.sort + 1) % len(SORTS)
        self.recompute()

    def action_page(self, step: int) -> None:
        total = len(self.rows) if self.rows is not None else len(self.index)
        self.page = max(0, min(self.page + step, (total - 1) // PAGE))
        self.fill()

    def action_group(self) -> None:
        i = self.selected()
        if i is not None and self.index.summary(i).group_id:
            self.push_screen(GroupScreen(self.index, self.index.summary(i).group_id))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def check_file(self) -> None:
        if self.index.refresh():
            self.recompute() if self.rows is not None else self.fill()
