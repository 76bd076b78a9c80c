def label(count):
    return "件数：" + "日本語のテキスト" + count


label(3)
