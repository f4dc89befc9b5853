"""The lesson site's generated pages (the mkdocs hook), one module per page kind; the words in
words/*.yaml. The top floor: may import everything below."""
