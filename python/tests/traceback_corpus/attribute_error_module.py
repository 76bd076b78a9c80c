import math

area = math.pie * 2 ** 2
