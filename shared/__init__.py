"""Infrastructure every service uses; no business rules live here."""
