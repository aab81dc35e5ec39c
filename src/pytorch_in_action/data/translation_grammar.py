"""A small English->Chinese grammar and lexicon that generates SYNTHETIC sentence pairs.

The bundled translation corpus is made here, offline: subject/verb/object sentences with adjectives,
numbers and measure words (个/本/只/杯...), negation (不/没), questions (吗/什么/哪里), aspect and tense
(了/过/会) and the Chinese word order that moves time and place phrases before the verb. Every English
sentence has exactly one Chinese translation, so a model can in principle reach a perfect score; the
combinations run into the millions, so it cannot memorise them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --- lexicon ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    en: str
    zh: str
    person: str  # "1s" (I), "2" (you), "3s" (he/she/it), "pl"


@dataclass(frozen=True)
class Noun:
    one: str  # "apple", "cup of tea"
    many: str  # "apples", "cups of tea"
    generic: str  # "apples", "tea" (as in "I like apples", "I drink tea")
    zh: str
    measure: str  # 个 本 只 杯 ...
    tags: frozenset[str]


@dataclass(frozen=True)
class Verb:
    base: str
    s3: str  # third person singular
    past: str
    part: str  # past participle
    zh: str
    takes: frozenset[str]  # noun tags this verb accepts as object


@dataclass(frozen=True)
class Adjective:
    en: str
    attr: str  # attributive form before a noun: 大 / 贵的 / 红色的
    pred: str | None  # predicative after 很/不 (None: colour, uses 是...的)


SUBJECTS = [
    Subject("I", "我", "1s"), Subject("you", "你", "2"), Subject("he", "他", "3s"), Subject("she", "她", "3s"),
    Subject("we", "我们", "pl"), Subject("they", "他们", "pl"), Subject("Tom", "汤姆", "3s"),
    Subject("Mary", "玛丽", "3s"), Subject("Li Lei", "李雷", "3s"), Subject("my friend", "我的朋友", "3s"),
    Subject("my teacher", "我的老师", "3s"), Subject("his mother", "他的妈妈", "3s"),
    Subject("her brother", "她的哥哥", "3s"), Subject("the doctor", "医生", "3s"),
    Subject("the students", "学生们", "pl"), Subject("our neighbours", "我们的邻居", "pl"),
    Subject("my parents", "我的父母", "pl"), Subject("the children", "孩子们", "pl"),
]


def _n(one: str, zh: str, measure: str, tags: str, many: str | None = None, generic: str | None = None) -> Noun:
    many = many or one + "s"
    return Noun(one, many, generic or many, zh, measure, frozenset(tags.split()))


NOUNS = [
    _n("apple", "苹果", "个", "food thing"), _n("orange", "橙子", "个", "food thing"),
    _n("banana", "香蕉", "根", "food"), _n("cake", "蛋糕", "块", "food"), _n("egg", "鸡蛋", "个", "food"),
    _n("cup of tea", "茶", "杯", "drink", "cups of tea", "tea"),
    _n("cup of coffee", "咖啡", "杯", "drink", "cups of coffee", "coffee"),
    _n("glass of milk", "牛奶", "杯", "drink", "glasses of milk", "milk"),
    _n("glass of water", "水", "杯", "drink", "glasses of water", "water"),
    _n("book", "书", "本", "read thing write"), _n("newspaper", "报纸", "份", "read thing"),
    _n("letter", "信", "封", "read write"), _n("cat", "猫", "只", "animal"), _n("dog", "狗", "只", "animal"),
    _n("bird", "鸟", "只", "animal"), _n("car", "车", "辆", "vehicle thing wash"),
    _n("bicycle", "自行车", "辆", "vehicle thing wash"), _n("pen", "笔", "支", "thing carry"),
    _n("chair", "椅子", "把", "thing"), _n("table", "桌子", "张", "thing wash"),
    _n("umbrella", "伞", "把", "thing carry"), _n("computer", "电脑", "台", "thing carry"),
    _n("phone", "手机", "部", "thing carry"), _n("flower", "花", "朵", "thing"),
    _n("shirt", "衬衫", "件", "thing wash"), _n("ticket", "票", "张", "thing carry"),
    _n("house", "房子", "座", "thing"), _n("picture", "画", "幅", "thing"),
]


def _v(base: str, s3: str, past: str, part: str, zh: str, takes: str) -> Verb:
    return Verb(base, s3, past, part, zh, frozenset(takes.split()))


VERBS = [
    _v("eat", "eats", "ate", "eaten", "吃", "food"),
    _v("drink", "drinks", "drank", "drunk", "喝", "drink"),
    _v("buy", "buys", "bought", "bought", "买", "food drink thing vehicle animal"),
    _v("sell", "sells", "sold", "sold", "卖", "food thing vehicle animal"),
    _v("see", "sees", "saw", "seen", "看见", "animal thing vehicle"),
    _v("like", "likes", "liked", "liked", "喜欢", "food drink animal thing vehicle"),
    _v("want", "wants", "wanted", "wanted", "想要", "food drink animal thing vehicle"),
    _v("find", "finds", "found", "found", "找到", "thing animal read"),
    _v("write", "writes", "wrote", "written", "写", "write"),
    _v("borrow", "borrows", "borrowed", "borrowed", "借", "read carry vehicle"),
    _v("wash", "washes", "washed", "washed", "洗", "wash"),
    _v("bring", "brings", "brought", "brought", "带", "carry drink read"),
    _v("lose", "loses", "lost", "lost", "丢", "carry animal read"),
    _v("order", "orders", "ordered", "ordered", "点", "food drink"),
]

ADJECTIVES = [
    Adjective("big", "大", "大"), Adjective("small", "小", "小"), Adjective("new", "新", "新"),
    Adjective("old", "旧", "旧"), Adjective("expensive", "贵的", "贵"), Adjective("cheap", "便宜的", "便宜"),
    Adjective("beautiful", "漂亮的", "漂亮"), Adjective("heavy", "重的", "重"), Adjective("red", "红色的", None),
    Adjective("black", "黑色的", None), Adjective("white", "白色的", None),
]
# adjectives that make sense for each noun tag (drinks are only hot/cold, animals not heavy ...)
DRINK_ADJECTIVES = [Adjective("hot", "热的", "热"), Adjective("cold", "冷的", "冷")]

NUMBERS = [("one", "一"), ("two", "两"), ("three", "三"), ("four", "四"), ("five", "五"), ("six", "六"),
           ("seven", "七"), ("eight", "八"), ("nine", "九"), ("ten", "十"), ("twenty", "二十")]
POSSESSIVES = [("my", "我的"), ("your", "你的"), ("his", "他的"), ("her", "她的"), ("our", "我们的"),
               ("their", "他们的")]
PLACES = [("at home", "在家", "home"), ("at school", "在学校", "the school"), ("in the park", "在公园", "the park"),
          ("at the station", "在车站", "the station"), ("in the library", "在图书馆", "the library"),
          ("in the shop", "在商店", "the shop"), ("at the market", "在市场", "the market"),
          ("in the office", "在办公室", "the office"), ("in the kitchen", "在厨房", "the kitchen"),
          ("at the hospital", "在医院", "the hospital"), ("in Beijing", "在北京", None),
          ("in Shanghai", "在上海", None), ("at the airport", "在机场", "the airport")]
TIMES = {
    "past": [("yesterday", "昨天"), ("last week", "上个星期"), ("last year", "去年"), ("last night", "昨天晚上"),
             ("this morning", "今天早上"), ("two days ago", "两天前"), ("three days ago", "三天前")],
    "future": [("tomorrow", "明天"), ("next week", "下个星期"), ("next year", "明年"),
               ("tomorrow morning", "明天早上"), ("this evening", "今天晚上"), ("next month", "下个月")],
    "habit": [("every day", "每天"), ("every morning", "每天早上"), ("every week", "每个星期"),
              ("on weekends", "周末"), ("every evening", "每天晚上")],
}
STATION_WORDS = {"the station": "车站", "the school": "学校", "the park": "公园", "the library": "图书馆",
                 "the shop": "商店", "the market": "市场", "the office": "办公室", "the kitchen": "厨房",
                 "the hospital": "医院", "the airport": "机场", "the bathroom": "洗手间", "the bank": "银行",
                 "the hotel": "酒店", "the restaurant": "饭馆"}

# --- phrase builders ------------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _adjectives_for(noun: Noun) -> list[Adjective]:
    if "drink" in noun.tags:
        return DRINK_ADJECTIVES
    if "animal" in noun.tags:
        return [a for a in ADJECTIVES if a.en not in {"heavy", "expensive", "cheap", "new", "old"}]
    return ADJECTIVES


def counted_np(rng: random.Random, noun: Noun) -> tuple[str, str]:
    """"two big apples" -> "两个大苹果": number + measure word + (adjective) + noun."""
    adj = rng.choice(_adjectives_for(noun)) if rng.random() < 0.4 else None
    if rng.random() < 0.45:
        num_en, num_zh, plural = "", "一", False
    else:
        num_en, num_zh = rng.choice(NUMBERS)
        plural = num_en != "one"
    head = noun.many if plural else noun.one
    zh_head = noun.zh
    if adj is not None:
        if " of " in head:  # "two cups of hot tea"
            cont, rest = head.split(" of ", 1)
            head = f"{cont} of {adj.en} {rest}"
        else:
            head = f"{adj.en} {head}"
        zh_head = adj.attr + noun.zh
    det = num_en or _article(head)
    return f"{det} {head}", f"{num_zh}{noun.measure}{zh_head}"


def definite_np(rng: random.Random, noun: Noun) -> tuple[str, str, bool]:
    """"this book" -> "这本书", "my cats" -> "我的猫", "those pens" -> "那些笔"; returns (en, zh, plural)."""
    r = rng.random()
    if r < 0.5:
        plural = rng.random() < 0.3
        near = rng.random() < 0.5
        det = ("these" if near else "those") if plural else ("this" if near else "that")
        zh_det = ("这" if near else "那") + ("些" if plural else noun.measure)
        return f"{det} {noun.many if plural else noun.one}", zh_det + noun.zh, plural
    if r < 0.75:
        en, zh = rng.choice(POSSESSIVES)
        return f"{en} {noun.one}", zh + noun.zh, False
    return f"the {noun.one}", "那" + noun.measure + noun.zh, False


def _object(rng: random.Random, verb: Verb, kind: str) -> tuple[str, str]:
    noun = rng.choice([n for n in NOUNS if n.tags & verb.takes])
    if kind == "generic":
        return noun.generic, noun.zh
    if kind == "counted":
        return counted_np(rng, noun)
    en, zh, _ = definite_np(rng, noun)
    return en, zh


def _be(person: str, plural: bool = False) -> str:
    if plural or person in {"2", "pl"}:
        return "are"
    return "am" if person == "1s" else "is"


def _do(person: str) -> str:
    return "does" if person == "3s" else "do"


def _have(person: str) -> str:
    return "has" if person == "3s" else "have"


def _finish(en: str, zh: str, question: bool) -> tuple[str, str]:
    en = en[0].upper() + en[1:] + ("?" if question else ".")
    return en, zh + ("？" if question else "。")


def _opt(rng: random.Random, items: list, p: float):
    return rng.choice(items) if rng.random() < p else None


# --- sentence forms -------------------------------------------------------------------------------------


def statement(rng: random.Random) -> tuple[str, str]:
    """Habit / past / future statements, positive or negative, with optional time and place phrases."""
    s, v = rng.choice(SUBJECTS), rng.choice(VERBS)
    tense = rng.choice(["habit", "past", "future", "past_neg", "future_neg", "habit_neg"])
    place = _opt(rng, PLACES, 0.35)
    time = _opt(rng, TIMES[tense.split("_")[0]], 0.5 if tense.startswith("habit") else 0.6)
    if tense == "habit":
        obj_en, obj_zh = _object(rng, v, rng.choice(["generic", "counted"]))
        en_v, zh_v = (v.s3 if s.person == "3s" else v.base), v.zh
    elif tense == "habit_neg":
        obj_en, obj_zh = _object(rng, v, "generic")
        en_v, zh_v = f"{_do(s.person)} not {v.base}", "不" + v.zh
    elif tense == "past":
        obj_en, obj_zh = _object(rng, v, rng.choice(["counted", "definite"]))
        en_v, zh_v = v.past, v.zh + "了"
    elif tense == "past_neg":
        obj_en, obj_zh = _object(rng, v, "definite")
        en_v, zh_v = f"did not {v.base}", "没" + v.zh
    elif tense == "future":
        obj_en, obj_zh = _object(rng, v, rng.choice(["counted", "definite"]))
        en_v, zh_v = f"will {v.base}", "会" + v.zh
    else:
        obj_en, obj_zh = _object(rng, v, rng.choice(["counted", "definite"]))
        en_v, zh_v = f"will not {v.base}", "不会" + v.zh
    en = " ".join(x for x in [s.en, en_v, obj_en, place and place[0], time and time[0]] if x)
    zh = "".join(x for x in [s.zh, time and time[1], place and place[1], zh_v, obj_zh] if x)
    return _finish(en, zh, False)


def experience(rng: random.Random) -> tuple[str, str]:
    """Perfect of experience with 过: "I have seen this cat" -> "我看见过这只猫"; questions with "ever"."""
    s, v = rng.choice(SUBJECTS), rng.choice(VERBS)
    form = rng.choice(["pos", "never", "question"])
    obj_en, obj_zh = _object(rng, v, rng.choice(["counted", "definite", "generic"]))
    if form == "pos":
        return _finish(f"{s.en} {_have(s.person)} {v.part} {obj_en}", f"{s.zh}{v.zh}过{obj_zh}", False)
    if form == "never":
        return _finish(f"{s.en} {_have(s.person)} never {v.part} {obj_en}", f"{s.zh}从来没{v.zh}过{obj_zh}", False)
    return _finish(f"{_have(s.person)} {s.en} ever {v.part} {obj_en}", f"{s.zh}{v.zh}过{obj_zh}吗", True)


def yes_no_question(rng: random.Random) -> tuple[str, str]:
    """"Did he buy a car yesterday?" -> "他昨天买了一辆车吗？"."""
    s, v = rng.choice(SUBJECTS), rng.choice(VERBS)
    tense = rng.choice(["habit", "past", "future"])
    time = _opt(rng, TIMES[tense], 0.5)
    place = _opt(rng, PLACES, 0.25)
    if tense == "habit":
        obj_en, obj_zh = _object(rng, v, "generic")
        en = f"{_do(s.person)} {s.en} {v.base} {obj_en}"
        zh_v = v.zh
    elif tense == "past":
        obj_en, obj_zh = _object(rng, v, rng.choice(["counted", "definite"]))
        en, zh_v = f"did {s.en} {v.base} {obj_en}", v.zh + "了"
    else:
        obj_en, obj_zh = _object(rng, v, rng.choice(["counted", "definite"]))
        en, zh_v = f"will {s.en} {v.base} {obj_en}", "会" + v.zh
    en = " ".join(x for x in [en, place and place[0], time and time[0]] if x)
    zh = "".join(x for x in [s.zh, time and time[1], place and place[1], zh_v, obj_zh, "吗"] if x)
    return _finish(en, zh, True)


def what_question(rng: random.Random) -> tuple[str, str]:
    """"What did Tom eat yesterday?" -> "汤姆昨天吃了什么？"."""
    s, v = rng.choice(SUBJECTS), rng.choice(VERBS)
    tense = rng.choice(["habit", "past", "future"])
    time = _opt(rng, TIMES[tense], 0.6)
    place = _opt(rng, PLACES, 0.3)
    aux = {"habit": _do(s.person), "past": "did", "future": "will"}[tense]
    zh_v = {"habit": v.zh, "past": v.zh + "了", "future": "会" + v.zh}[tense]
    en = " ".join(x for x in ["what", aux, s.en, v.base, place and place[0], time and time[0]] if x)
    zh = "".join(x for x in [s.zh, time and time[1], place and place[1], zh_v, "什么"] if x)
    return _finish(en, zh, True)


def where_question(rng: random.Random) -> tuple[str, str]:
    """"Where is the station?" -> "车站在哪里？"; "Where do you buy books?" -> "你在哪里买书？"."""
    r = rng.random()
    if r < 0.3:
        en_np, zh_np = rng.choice(list(STATION_WORDS.items()))
        return _finish(f"where is {en_np}", f"{zh_np}在哪里", True)
    if r < 0.6:
        noun = rng.choice(NOUNS)
        en_np, zh_np, plural = definite_np(rng, noun)
        return _finish(f"where {'are' if plural else 'is'} {en_np}", f"{zh_np}在哪里", True)
    s, v = rng.choice(SUBJECTS), rng.choice(VERBS)
    obj_en, obj_zh = _object(rng, v, "generic")
    if rng.random() < 0.5:
        return _finish(f"where {_do(s.person)} {s.en} {v.base} {obj_en}", f"{s.zh}在哪里{v.zh}{obj_zh}", True)
    return _finish(f"where did {s.en} {v.base} {obj_en}", f"{s.zh}在哪里{v.zh}的{obj_zh}", True)


def predicate(rng: random.Random) -> tuple[str, str]:
    """"This book is very expensive" -> "这本书很贵"; "Is that car red?" -> "那辆车是红色的吗？"."""
    noun = rng.choice(NOUNS)
    en_np, zh_np, plural = definite_np(rng, noun)
    adj = rng.choice(_adjectives_for(noun))
    be = "are" if plural else "is"
    form = rng.choice(["pos", "neg", "question"])
    if adj.pred is None:  # colours: 是...的
        zh = {"pos": f"{zh_np}是{adj.attr}", "neg": f"{zh_np}不是{adj.attr}", "question": f"{zh_np}是{adj.attr}吗"}
    else:
        zh = {"pos": f"{zh_np}很{adj.pred}", "neg": f"{zh_np}不{adj.pred}", "question": f"{zh_np}{adj.pred}吗"}
    if adj.pred is not None and form == "pos" and rng.random() < 0.5:  # "very" -> 非常
        return _finish(f"{en_np} {be} very {adj.en}", f"{zh_np}非常{adj.pred}", False)
    en = {"pos": f"{en_np} {be} {adj.en}", "neg": f"{en_np} {be} not {adj.en}", "question": f"{be} {en_np} {adj.en}"}
    return _finish(en[form], zh[form], form == "question")


FORMS = [(statement, 0.42), (experience, 0.1), (yes_no_question, 0.14), (what_question, 0.1),
         (where_question, 0.09), (predicate, 0.15)]


def sentence_pair(rng: random.Random) -> tuple[str, str]:
    """One random (English, Chinese) pair from the grammar."""
    form = rng.choices([f for f, _ in FORMS], weights=[w for _, w in FORMS])[0]
    return form(rng)


def generate_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` distinct synthetic pairs, deterministic in `seed` (raises if the grammar cannot supply them)."""
    rng = random.Random(seed)
    seen: dict[str, str] = {}
    for _ in range(n * 20):
        en, zh = sentence_pair(rng)
        seen.setdefault(en, zh)
        if len(seen) == n:
            return list(seen.items())
    raise ValueError(f"the grammar produced only {len(seen)} distinct pairs, fewer than {n}")
