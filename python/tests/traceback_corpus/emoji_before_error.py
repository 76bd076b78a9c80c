scores = {"🎉 party": 1, "🚀 rocket": 2}
print("🎉🎉🎉", scores["🚀 rocket"] + scores["🐍 snake"])
