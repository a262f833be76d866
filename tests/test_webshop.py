import json

import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from environments.webshop.catalog import Goal, Product
from environments.webshop.reward import (
    attribute_matched,
    normalize_color,
    nouns,
    option_matched,
    purchase_score,
)
from tests.conftest import play


@pytest.fixture(scope="module")
def env():
    env = agentgym.make("WebShop-v0")
    yield env
    env.close()


def test_check_env(env):
    check_env(env)


def test_expert_scores_one_on_every_task(env):
    for split in ("train", "test"):
        for seed in range(25):
            reward, info = play(env, lambda i: i["expert_action"], seed, {"split": split})
            assert reward == 1.0 and info["success"], (split, seed, info["outcome_channels"])


def test_random_policy_scores_clearly_less(env):
    episodes = agentgym.rollout(env, agentgym.RandomPolicy(), tasks=30, seed=1, progress=False)
    mean = sum(e.outcome.channels["score"] for e in episodes) / len(episodes)
    assert mean < 0.5


PRODUCT = Product(asin="B1", title="Zora Classic Running Shoe - Non Slip, Breathable",
                  category="clothing, shoes & jewelry › women › shoes",
                  product_type="running shoe", brand="Zora", price=40.0,
                  attributes=["non slip", "breathable", "memory foam"],
                  options={"size": ["7", "8"], "color": ["navy blue", "white"]},
                  bullets=["Breathable: made to last."], description="A shoe.",
                  query="running shoe")
GOAL = Goal(asin="B1", instruction="i need ...", query="non slip running shoe",
            product_type="running shoe", category=PRODUCT.category,
            attributes=("non slip", "memory foam"), options=(("size", "8"), ("color", "blue")),
            price_upper=50.0, title=PRODUCT.title)
RIGHT = {"size": "8", "color": "navy blue"}


def test_reward_perfect_purchase():
    assert purchase_score(PRODUCT, RIGHT, GOAL).score == 1.0  # navy blue matches blue


def test_each_missing_attribute_or_option_costs_its_share():
    # 2 attributes + 2 options + price = 5 parts
    no_foam = Product(**{**PRODUCT.__dict__, "attributes": ["non slip", "breathable"]})
    assert purchase_score(no_foam, RIGHT, GOAL).score == pytest.approx(4 / 5)
    assert purchase_score(PRODUCT, {"size": "7", "color": "navy blue"}, GOAL).score == \
        pytest.approx(4 / 5)
    assert purchase_score(PRODUCT, {"size": "7", "color": "white"}, GOAL).score == \
        pytest.approx(3 / 5)


def test_over_budget_loses_the_price_point():
    pricey = Product(**{**PRODUCT.__dict__, "price": 80.0})
    parts = purchase_score(pricey, RIGHT, GOAL)
    assert parts.price == 0.0 and parts.score == pytest.approx(4 / 5)


def test_wrong_type_gates_to_a_fraction():
    # a different product type in another department whose title shares one noun in eight
    mug = Product(**{**PRODUCT.__dict__, "title": "Belo Shoe Rack Organizer Tower Stand Shelf "
                     "Cabinet Bench", "category": "home & kitchen › storage",
                     "query": "shoe rack", "attributes": ["non slip", "memory foam"]})
    goal = Goal(**{**GOAL.__dict__, "title": "Zora Running Shoe Trainer Sneaker Sport Gym Mesh"})
    overlap = len(nouns(mug.title) & nouns(goal.title)) / len(nouns(goal.title))
    assert 0.1 <= overlap <= 0.2
    parts = purchase_score(mug, RIGHT, goal)
    assert parts.type == 0.5 and parts.score == pytest.approx(0.5)
    cup = Product(**{**mug.__dict__, "title": "Belo Coffee Cup"})
    assert purchase_score(cup, RIGHT, goal).score == 0.0  # no shared noun: type 0


def test_noun_filter_and_colours():
    assert nouns("Zora Classic Running Shoe - Non Slip") == {"zora", "running", "shoe", "slip"}
    assert normalize_color("Navy Blue") == "blue blue"


def test_fuzzy_matching_processes_text_as_thefuzz_does():
    # thefuzz lower-cases and turns non-alphanumerics into spaces before token_set_ratio
    assert option_matched("7", ["7.5"])
    assert option_matched("non-gmo", ["Non GMO"])
    assert not option_matched("7", ["8.5"])
    gmo = Product(asin="B2", title="Oat Bar", category="food", product_type="bar",
                  brand="x", price=3.0, attributes=["non gmo"], options={}, bullets=[],
                  description="", query="bar")
    assert attribute_matched("non-gmo", gmo)
    assert not attribute_matched("gluten free", gmo)


def test_search_page_offers_the_search_form_not_the_goal(env):
    _, info = env.reset(seed=3)
    goal = env.task.source
    assert info["admissible_actions"] == ["search[<your query>]"]
    assert not set(goal.query.split()) & set(info["admissible_actions"][0][7:-1].split())
    _, _, _, _, info = env.step(info["admissible_actions"][0])  # a valid (useless) search
    assert info["action_valid"] and all(a.startswith("click[") for a in info["admissible_actions"])


BAD = {
    "search[": "not closed",
    "click[buy now": "not closed",
    "search[]": "empty",
    "buy it": "expected search[...] or click[...]",
}


def test_bad_actions_answer_clearly_and_the_episode_goes_on(env):
    obs, info = env.reset(seed=4)
    for action, problem in BAD.items():
        obs, reward, terminated, truncated, info = env.step(action)
        assert problem in obs and not info["action_valid"] and not terminated
    obs, *_, info = env.step("click[buy now]")
    assert "There is no button 'buy now' on this page" in obs and info["action_valid"]
    obs, *_, info = env.step(info["expert_action"])          # the search
    obs, *_, info = env.step("search[socks]")
    assert "no search bar on this page" in obs
    obs, *_, info = env.step("click[teleport]")
    assert "There is no button 'teleport'" in obs and "back to search" in obs
    while True:  # nothing was lost: the expert still finishes the task
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if terminated or truncated:
            break
    assert reward == 1.0


def test_state_key_and_progress(env):
    obs, info = env.reset(seed=2)
    *_, info = env.step(info["expert_action"])
    results_key = info["state_key"]
    if "click[next >]" in info["admissible_actions"]:
        *_, after = env.step("click[next >]")
        *_, back = env.step("click[< prev]")
        assert after["state_key"] != results_key and back["state_key"] == results_key
        info = back
    *_, item = env.step(info["expert_action"])  # open the target
    assert item["reward_channels"]["progress"] == 1.0
    *_, sub = env.step("click[description]")
    *_, again = env.step("click[< prev]")
    assert again["state_key"] == item["state_key"] and sub["state_key"] != item["state_key"]
    assert again["reward_channels"]["progress"] == 0.0  # reaching it again earns nothing


def test_markdown_view():
    with agentgym.make("WebShop-v0", observation_mode="markdown") as env:
        obs, info = env.reset(seed=0)
        obs, *_ = env.step(info["expert_action"])
    assert "## Instruction:" in obs and "[Next >]" in obs and "[SEP]" not in obs


def test_webshop_item_files_load(tmp_path):
    items = [{"asin": f"B00{n}", "name": f"Kelp {kind} Soap Bar", "query": "soap",
              "product_category": "beauty › bath › soap", "pricing": ["$9.99"],
              "small_description": ["gentle"], "full_description": "Natural soap.",
              "customization_options": {"Scent": [{"value": "mint"}, {"value": kind}]},
              "attributes": ["natural", "vegan"]}
             for n, kind in enumerate(["lemon", "rose", "pine", "oat"])]
    path = tmp_path / "items_shuffle.json"
    path.write_text(json.dumps(items))
    human = tmp_path / "items_human_ins.json"
    human.write_text(json.dumps({"B001": [{
        "instruction": "i want a vegan soap bar that smells of rose, and price lower than "
                       "20.00 dollars", "instruction_attributes": ["vegan"],
        "instruction_options": ["rose"]}]}))
    with agentgym.make("WebShop-v0", items=str(path), human_instructions=str(human),
                       cache_dir=tmp_path) as env:
        reward, info = play(env, lambda i: i["expert_action"], 1)
        assert reward == 1.0
        test = {"split": "test"}  # test task 0 is product 1, B001: the human instruction
        obs, info = env.reset(seed=0, options=test)
        assert "smells of rose" in info["instruction"]
        reward, info = play(env, lambda i: i["expert_action"], 0, test)
        assert reward == 1.0
