"""A person's review before publishing: the corrections they make, the page they make them on, their sign-off."""
