#!/usr/bin/env python3
"""Writes tests/golden/tokenizers/corpus.json: the texts every tokenizer golden file encodes.
Hand-written sentences in 15+ scripts, emoji with ZWJ sequences, code, numbers, whitespace runs and
typed special tokens, plus pairings of them (so joins between scripts and specials are covered)."""
import json, os

BASE = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "I'm sure they'll've done it, didn't they?",
    "DON'T SHOUT. It'S fine; we'RE here.", "Attention is all you need.", "  leading spaces", "trailing spaces   ",
    "tabs\tand\ttabs", "line one\nline two\r\nline three\n\n\nafter blanks", "   \n  \t  \n", " ", "",
    "a", "(x) [y] {z} <w>", "(x+y)*z == 42", "e.g. i.e. U.S.A. Mr. Smith", "well-known state-of-the-art",
    "Numbers: 1 12 123 1234 12345 123456 1234567", "3.14159 2,718 1e-9 -0.5 +7 0x1F 0b1010", "2026-12-02 09:58:58",
    "$100 €20 £5 ¥1000 ₹50", "100% of 50% is 50%", "phone: +1 (555) 123-4567",
    # Cyrillic, Greek
    "Привет, мир! Как дела?", "МОСКВА — столица России.", "Ёлка и ёжик", "Γειά σου Κόσμε!", "ΑΘΗΝΑ Ελλάδα άλφα",
    # Arabic, Hebrew
    "مرحبا بالعالم", "اللغة العربية جميلة ١٢٣", "שלום עולם", "עברית: אבגד",
    # Indic
    "नमस्ते दुनिया", "हिन्दी भाषा १२३", "বাংলা ভাষা", "தமிழ் மொழி", "తెలుగు", "ગુજરાતી",
    # Southeast Asian
    "สวัสดีชาวโลก", "ภาษาไทย", "Xin chào thế giới", "Tiếng Việt có dấu: ắ ằ ẳ ẵ ặ",
    # CJK
    "你好，世界！", "我爱自然语言处理。", "こんにちは世界", "カタカナとひらがなと漢字", "안녕하세요 세계", "한국어 문장입니다.",
    "ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ１２３！", "「引用」と『二重』",
    # others
    "Բարեւ աշխարհ", "გამარჯობა მსოფლიო", "ሰላም ለዓለም", "ᚠᚢᚦᚨᚱᚲ", "Ⲁⲃⲅ", "ꦲꦏ꧀ꦱꦫ",
    # Latin with accents, decomposed forms
    "Café naïve résumé façade", "Cafe\u0301 nai\u0308ve", "Straße groß", "Ærø Øresund Åland", "Łódź Żółć",
    "İstanbul ışık", "ǅemal ǈ ǋ", "ﬁ ﬂ ﬀ ligatures", "Ⅻ ① ² ½",
    # emoji
    "👍", "I ❤️ NLP 🤖", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👩🏽‍💻 coder", "🇩🇪🇫🇷🇯🇵", "😀😃😄😁😆😅😂🤣",
    # code
    "def f(x):\n    return x ** 2\n", "int main() { return 0; }", "for (int i = 0; i < n; ++i) a[i] += b[i];",
    "if x != None and y >= 3:\n\tpass", "const s = `template ${x}`;", "SELECT * FROM t WHERE id = 7;",
    "<html><body class=\"x\">hi</body></html>", "https://example.com/path?q=1&r=two#frag", "user@example.org",
    "C:\\Users\\name\\file.txt", "#include <vector>\nstd::vector<int> v{1, 2, 3};", "x=1;y=2;z=x+y",
    "    four spaces\n        eight", "a  b   c    d     e", "end.\n", "...", "!!!???", "--->", "====",
    "__init__ self._x", "camelCaseWord PascalCase snake_case kebab-case", "ALLCAPS lowercase MiXeD",
    # whitespace oddities
    "non\u00a0breaking", "zero\u200bwidth", "thin\u2009space", "ideographic\u3000space", "\u00adsoft hyphen",
]
SPECIALS = ["<|endoftext|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>", "<|end_of_text|>",
            "<|start_header_id|>user<|end_header_id|>", "<|eot_id|>", "[CLS]", "[SEP]", "[MASK]", "<pad>"]

texts = list(BASE)
for i, s in enumerate(SPECIALS):
    texts.append(s)
    texts.append("Hello " + s + " world")
    texts.append(BASE[(i * 7) % len(BASE)] + s + BASE[(i * 11 + 3) % len(BASE)])
for i in range(0, len(BASE) - 1, 3):
    texts.append(BASE[i] + " " + BASE[i + 1])
    texts.append(BASE[i] + "\n" + BASE[(i + 40) % len(BASE)])
for t in ["a <L> b", "a   <L>b", "a\n\t<L> b", "a <R>   b", "a <R>\n\nb", "x  <LR>  y", "<LR>", "  <L>", "<R>  ",
          "the word is", "sword words word", "a word, word.", "wordword", "é word ü", "x<sw>y", "x <sw> y", "<sw>",
          "the <|plain|> world", "in<|plain|>or", "<|plain|><|plain|>", "the<L><R>world", " <L> <R> <LR> "]:
    texts.append(t)
texts.append(" ".join(BASE))
texts.append("The " * 50)
texts.append("9" * 40)
texts.append("ab" * 30 + "\n" * 5 + " " * 9 + "!")

out = os.path.join(os.path.dirname(__file__), "..", "golden", "tokenizers", "corpus.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump({"texts": texts}, f, ensure_ascii=False, indent=0)
print(len(texts), "texts ->", out)
