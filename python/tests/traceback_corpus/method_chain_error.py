class Query:
    def where(self, **kw):
        return self

    def order(self, key):
        return None


Query().where(a=1).order("x").limit(5)
