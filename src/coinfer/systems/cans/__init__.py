"""cans."""
