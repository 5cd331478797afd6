"""A deterministic, varied test corpus (>= 300 texts): prose, long texts beyond 256 tokens,
accented unicode, CJK, emoji, code, and very short strings."""

from __future__ import annotations

import inspect
import json
import textwrap

from sqlembed.benchmark.corpus import paragraphs

UNICODE = [
    "Crème brûlée, façade, naïve café — déjà vu in São Paulo.",
    "Ångström, Øresund, Ærøskøbing: Scandinavian letters.",
    "Straße, Größe, Übermäßig: German sharp s and umlauts.",
    "Zażółć gęślą jaźń: a Polish pangram.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.",
    "עטלף אבק נס דרך מזגן שהתפוצץ כי חם",
    "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت",
    "नमस्ते, आप कैसे हैं? मैं ठीक हूँ।",
    "สวัสดีครับ ยินดีต้อนรับ",
    "Tiếng Việt có dấu: Hà Nội, Đà Nẵng.",
    "Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ ≤ ∞; √2 ≈ 1.414.",
    "Ligatures ﬁ ﬂ and full-width ＡＢＣ１２３ characters.",
    "Zero\u200bwidth\u200bspaces and combining e\u0301 accents.",
]
CJK = [
    "今日は天気がいいので、公園を散歩しました。",
    "機械学習モデルはテキストをベクトルに変換します。",
    "SQL Server 2025 では AI_GENERATE_EMBEDDINGS 関数が使えます。",
    "我们在数据库中存储向量，并进行相似度搜索。",
    "北京是中国的首都，上海是最大的城市。",
    "嵌入模型把句子映射到高维空间。",
    "한국어 문장도 임베딩할 수 있습니다.",
    "서울은 대한민국의 수도입니다.",
    "東京都の人口は約千四百万人です。",
    "这是一个混合 English 和中文的句子。",
]
EMOJI = [
    "I love this product! 😍🔥👍",
    "Weather today: ☀️ then 🌧️ then ⛈️",
    "🚀 Launch day 🎉🎉🎉",
    "Family: 👨‍👩‍👧‍👦 and flags 🇯🇵🇫🇷🇧🇷",
    "Skin tones 👋🏻👋🏽👋🏿 and hearts ❤️🧡💛💚💙💜",
    "emoji only: 🐍🦀🐹☕",
    "Status ✅ done, ❌ failed, ⚠️ warning",
    "pizza 🍕 or sushi 🍣?",
]
SHORT = ["a", "I", "ok", "SQL", "42", "?", "hello", "Hello, world!", "vector search", "NULL", "-", "x y z"]


def _code() -> list[str]:
    out: list[str] = []
    for obj in (textwrap.dedent, textwrap.indent, json.dumps, inspect.getdoc, inspect.cleandoc):
        src = inspect.getsource(obj)
        out.append(src)
        out.append(src[:200])
    out += [
        "SELECT TOP (10) id, VECTOR_DISTANCE('cosine', @qv, embedding) AS d FROM dbo.docs ORDER BY d;",
        "UPDATE dbo.docs SET embedding = AI_GENERATE_EMBEDDINGS(body USE MODEL sqlembed) WHERE embedding IS NULL;",
        "fn main() { println!(\"hello\"); }",
        "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
        '{"model": "all-minilm", "input": ["a", "b"]}',
        "<div class=\"x\"><span>&amp; &lt;tag&gt;</span></div>",
    ]
    return out


def varied_texts() -> list[str]:
    prose = paragraphs(260)
    long_texts = [" ".join(prose[i : i + 12]) for i in range(0, 12 * 20, 12)]  # ~600 tokens each
    texts = prose + long_texts + UNICODE + CJK + EMOJI + SHORT + _code()
    return list(dict.fromkeys(texts))
