module deckhand.local/testimages

go 1.24
