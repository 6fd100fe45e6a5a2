DELETE FROM widgets;
