"""One router per resource of the console: sign-in, consultations, moderation, bulk, audit."""
