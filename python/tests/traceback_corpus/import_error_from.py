from os import pathh
