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
# what normalizers change: compatibility forms, canonical orderings and compositions, case
# mappings beyond ASCII, controls and format characters, CJK padding (BertNormalizer)
NORMALIZE = [
    "\uff21\uff22\uff23 \uff41\uff42\uff43 \uff10\uff11\uff12\uff13 \uff01\uff1f\uff08\uff09", "\u338f \u339e \u2103 \u2116 \u2122 \u2121 \u3231",
    "\ufb03 \ufb04 \ufb05 \ufb06", "\u00c5 A\u030a \u212b K \u212a \u03a9 \u2126", "\u01c4 \u01c6 \u01f2",
    "\u039f\u0394\u039f\u03a3 \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 \u03c2 \u03c3 \u03a3", "\u0130\u0130 i\u0307 \u0131 I",
    "a\u0323\u0302 a\u0302\u0323 \u1ead", "e\u0301\u0301 o\u0308\u0304 q\u0307\u0323", "\u1100\u1161\u11a8 \u1100\u1161 \uac01 \u1112\u1161\u11ab",
    "\u0915\u093c \u0958 \u0916\u093c", "\u0f73 \u0f71\u0f72 \u0f75", "x\u0000y\u0007z\u0085w", "bom\ufeffhere\u200b\u200c\u200d!",
    "rep\ufffdlace", "\u2028line\u2029para", "tab\u000bvt\u000cff\u001f", "\u4e2d\u6587\uff0c\u6807\u70b9\u3002\u300c\u62ec\u53f7\u300d",
    "\U00020000\U00020001 \U0002a700 \u4e3d\uf900", "\u00c0\u00c9\u00ce\u00d5\u00dc \u00e0\u00e9\u00ee\u00f5\u00fc \u00c7\u00d1",
    "\u1d2c\u1d2e \u00aa \u00ba \u207f \u2090", "\u2460 \u2469 \u249c \u24d0 \u24b6", "\u00bd \u00bc \u00be \u2153",
    "\uff21\uff22\uff23's \uff24\uff2f\uff2e\uff07\uff34", "\u2160 \u2161 \u2162 \u2173", "\u01c7ubljana \u01c7UBLJANA",
    "\u00df \u1e9e \u0149", "\u0390 \u03b0 \u1fb3 \u1fbc \u1ff3", "\u13a0 \u13a1 \uab70", "\u0531 \u0561 \u0556",
    "\U00010400\U00010428 \U0001e900", "\u210c \u210d \u2115", "\u00a0nbsp\u00a0lead", "x\u2000\u2001\u2002y\u3000z",
    "\U0001f170\U0001f171 \U0001f18e", "\u0301leading mark", "A\u030a\u0301", "\u1100\u1100\u1100", "Hello World hello world HELLO WORLD",
    "[CLS] Hello [SEP] World [MASK] again", "Mr. O'Neil's dog-house (2x) costs $9.99!", "\u0627\u064e\u0644\u0652\u0639\u064e\u0631\u064e\u0628\u0650\u064a\u064e\u0651\u0629",
    "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd", "\u0e01\u0e34\u0e19\u0e02\u0e49\u0e32\u0e27", "cafe\u0301-au-lait na\u00efve",
]
texts += NORMALIZE
texts.append(" ".join(BASE))
texts.append("The " * 50)
texts.append("9" * 40)
texts.append("ab" * 30 + "\n" * 5 + " " * 9 + "!")

out = os.path.join(os.path.dirname(__file__), "..", "golden", "tokenizers", "corpus.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump({"texts": texts}, f, ensure_ascii=False, indent=0)
print(len(texts), "texts ->", out)
