"""What users talk about: for every domain and user emotion, events that fit that emotion.

Each topic is (clause, subject): the clause is what the user says, first person, lower case ("my flight
got cancelled again"); the subject is how the reply refers back to it ("your flight"). Subjects are
singular noun phrases so they slot into any reply template without verb agreement. Clauses stay short
(4-9 words) because a sad, slow espeak voice must say the whole user turn in under ~6 seconds.
Within a domain every subject is unique, so the topic of a reply can be traced back to the user's words.
The first eight domains are here; the other twelve are in topics_more.py, merged into TOPICS below.
"""

from __future__ import annotations

from components.synthesis.topics_more import MORE_TOPICS

Topic = tuple[str, str]  # (clause the user says, subject the reply refers to)

_FIRST_EIGHT: dict[str, dict[str, tuple[Topic, ...]]] = {
    "work": {
        "neutral": (
            ("I have a meeting at ten", "the meeting"),
            ("I need to finish a report today", "the report"),
            ("I am starting a new shift next week", "the new shift"),
            ("my team is moving to a new office", "the office move"),
        ),
        "happy": (
            ("I got the promotion I wanted", "the promotion"),
            ("my boss praised my project today", "your project"),
            ("we finally closed the big deal", "the big deal"),
            ("I finally got my own office", "your own office"),
        ),
        "sad": (
            ("I was let go from my job", "losing your job"),
            ("my favorite coworker is leaving", "your coworker leaving"),
            ("my project got shut down", "your project ending"),
            ("I was passed over for the promotion", "being passed over"),
        ),
        "angry": (
            ("my manager took credit for my work", "your manager taking credit"),
            ("they cancelled my vacation days again", "the cancelled vacation"),
            ("the meeting ran two hours late", "that meeting"),
            ("my coworker keeps stealing my lunch", "the stolen lunch"),
        ),
        "fearful": (
            ("I have a big presentation tomorrow", "the presentation"),
            ("there are layoffs coming next week", "the layoffs"),
            ("my performance review is on Monday", "your review"),
            ("I made a big mistake at work", "the mistake"),
        ),
        "surprised": (
            ("my boss just gave everyone Friday off", "the day off"),
            ("a rival company offered me a job", "the job offer"),
            ("the whole team threw me a party", "the party"),
            ("the company doubled my bonus this year", "the bonus"),
        ),
    },
    "family": {
        "neutral": (
            ("we are having dinner at my aunt's house", "the dinner"),
            ("I need to call my mother later", "the call"),
            ("my kids start school on Monday", "the first school day"),
            ("I am picking up my nephew after school", "the school pickup"),
        ),
        "happy": (
            ("my sister just had a baby", "the new baby"),
            ("my parents are visiting this weekend", "the visit"),
            ("my son won his school race", "the race"),
            ("my grandfather is finally out of the hospital", "your grandfather coming home"),
        ),
        "sad": (
            ("my grandmother passed away last week", "losing your grandmother"),
            ("my brother and I stopped talking", "the distance with your brother"),
            ("my dog died this morning", "losing your dog"),
            ("my parents are selling my childhood home", "losing your childhood home"),
        ),
        "angry": (
            ("my brother borrowed my car and crashed it", "the crashed car"),
            ("my family forgot my birthday", "the forgotten birthday"),
            ("my cousin keeps lying to me", "your cousin's lying"),
            ("my mother keeps criticizing my cooking", "the constant criticism"),
        ),
        "fearful": (
            ("my father is going into surgery", "your father's surgery"),
            ("my daughter has not come home yet", "your daughter being late"),
            ("my parents might get divorced", "the divorce talk"),
            ("my wife is in labor right now", "the birth"),
        ),
        "surprised": (
            ("my long lost uncle just called me", "the call from your uncle"),
            ("my sister is secretly engaged", "the engagement"),
            ("my parents just bought a boat", "the boat"),
            ("my grandmother just learned to text", "your grandmother texting"),
        ),
    },
    "health": {
        "neutral": (
            ("I have a checkup on Tuesday", "the checkup"),
            ("I need to refill my prescription", "the prescription"),
            ("I am trying a new diet", "the new diet"),
            ("I have a dentist appointment tomorrow", "the dentist appointment"),
        ),
        "happy": (
            ("my test results came back clear", "the clear results"),
            ("I ran my first five kilometers", "your first run"),
            ("my back pain is finally gone", "your recovery"),
            ("I finally quit smoking for good", "quitting smoking"),
        ),
        "sad": (
            ("I can never play soccer again", "giving up soccer"),
            ("I have been sick for weeks", "being sick so long"),
            ("my knee injury is not healing", "your knee injury"),
            ("my chronic pain keeps me home every day", "the chronic pain"),
        ),
        "angry": (
            ("the clinic lost my test results", "the lost results"),
            ("I waited four hours at the doctor", "that long wait"),
            ("the pharmacy gave me the wrong pills", "the wrong pills"),
            ("my insurance refused to cover the surgery", "the insurance refusal"),
        ),
        "fearful": (
            ("I found a strange lump", "the lump"),
            ("my chest has been hurting all day", "the chest pain"),
            ("I have surgery on Friday", "the surgery"),
            ("the doctor wants to run more tests", "the next round of tests"),
        ),
        "surprised": (
            ("my blood pressure is suddenly perfect", "your blood pressure"),
            ("I lost ten pounds without trying", "the weight loss"),
            ("the doctor says I am fully healed", "the quick healing"),
            ("my hearing came back overnight", "your hearing"),
        ),
    },
    "travel": {
        "neutral": (
            ("my train leaves at six", "the train"),
            ("I need to renew my passport", "the passport renewal"),
            ("I am packing for a work trip", "the work trip"),
            ("I am renting a car for the trip", "the rental car"),
        ),
        "happy": (
            ("I just booked a trip to Japan", "the trip to Japan"),
            ("we got upgraded to first class", "the upgrade"),
            ("my visa was finally approved", "the visa"),
            ("I finally saw the northern lights", "seeing the northern lights"),
        ),
        "sad": (
            ("I had to cancel my dream vacation", "the lost vacation"),
            ("I miss my home country so much", "missing home"),
            ("my travel partner backed out", "your partner backing out"),
            ("today is the last day of my vacation", "the end of your vacation"),
        ),
        "angry": (
            ("my flight got cancelled again", "your flight"),
            ("the airline lost my luggage", "your luggage"),
            ("the hotel gave away my room", "the hotel room"),
            ("the taxi driver took the long way", "the taxi ride"),
        ),
        "fearful": (
            ("I have to fly through a storm tonight", "the stormy flight"),
            ("I lost my passport abroad", "the lost passport"),
            ("I am traveling alone for the first time", "the solo trip"),
            ("my connecting flight leaves in twenty minutes", "the tight connection"),
        ),
        "surprised": (
            ("my friend surprised me with plane tickets", "the plane tickets"),
            ("our train arrived an hour early", "the early train"),
            ("I won a free cruise", "the cruise"),
            ("I ran into my neighbor in Paris", "meeting your neighbor in Paris"),
        ),
    },
    "shopping": {
        "neutral": (
            ("I need to buy groceries tonight", "the grocery run"),
            ("I am looking for new shoes", "the shoe search"),
            ("I ordered a new lamp", "the new lamp"),
            ("I need a new winter coat", "the winter coat"),
        ),
        "happy": (
            ("I found the perfect dress on sale", "the dress"),
            ("my new laptop arrived today", "the new laptop"),
            ("I got the last concert tickets", "the concert tickets"),
            ("I finally bought my dream car", "your dream car"),
        ),
        "sad": (
            ("my favorite shop is closing down", "the shop closing"),
            ("I cannot afford the gift I wanted", "the gift"),
            ("I broke the watch my father gave me", "the broken watch"),
            ("the jacket I loved is sold out", "the sold out jacket"),
        ),
        "angry": (
            ("the store charged me twice", "the double charge"),
            ("my package was delivered broken", "the broken package"),
            ("they refused to refund my order", "the refused refund"),
            ("the cashier was so rude to me", "the rude cashier"),
        ),
        "fearful": (
            ("I think someone stole my card details", "the card problem"),
            ("my order might not arrive in time", "the late order"),
            ("I spent way too much money", "your budget"),
            ("I lost my wallet at the mall", "the lost wallet"),
        ),
        "surprised": (
            ("the cashier said my groceries were free", "the free groceries"),
            ("my old phone sold in one minute", "the quick sale"),
            ("the sofa I ordered came a week early", "the early sofa"),
            ("I won a shopping spree at the mall", "the shopping spree"),
        ),
    },
    "school": {
        "neutral": (
            ("I have a history class at noon", "the history class"),
            ("I need to return a library book", "the library book"),
            ("our semester ends in May", "the end of the semester"),
            ("my lab report is due on Thursday", "the lab report"),
        ),
        "happy": (
            ("I passed my final exam", "the exam"),
            ("I got into my first choice college", "the college acceptance"),
            ("my essay won a prize", "your essay"),
            ("I made the school soccer team", "the soccer team"),
        ),
        "sad": (
            ("I failed my math test", "the math test"),
            ("my best friend changed schools", "your friend leaving"),
            ("nobody sat with me at lunch", "that lonely lunch"),
            ("I did not get into any college", "the college rejection"),
        ),
        "angry": (
            ("my teacher graded me unfairly", "the unfair grade"),
            ("my group did none of the work", "the group project"),
            ("someone copied my homework", "the copied homework"),
            ("the teacher blamed me for the noise", "the unfair blame"),
        ),
        "fearful": (
            ("my finals start tomorrow", "the finals"),
            ("I might not graduate this year", "graduating"),
            ("I have to give a speech in class", "the speech"),
            ("I lost my backpack with all my notes", "the lost backpack"),
        ),
        "surprised": (
            ("I got a perfect score without studying", "the perfect score"),
            ("school is closed for the whole week", "the week off"),
            ("my shy classmate asked me to the dance", "the dance"),
            ("my teacher is retiring this year", "your teacher retiring"),
        ),
    },
    "money": {
        "neutral": (
            ("I need to pay my phone bill", "the phone bill"),
            ("I am making a budget for next month", "the budget"),
            ("my paycheck arrives on Friday", "the paycheck"),
            ("I am opening a new savings account", "the savings account"),
        ),
        "happy": (
            ("I finally paid off my student loan", "the paid off loan"),
            ("I got a raise this month", "the raise"),
            ("my savings reached a new goal", "your savings goal"),
            ("I paid off my credit card", "the credit card"),
        ),
        "sad": (
            ("I lost money on a bad investment", "the lost investment"),
            ("I had to sell my car to pay rent", "selling your car"),
            ("I cannot afford a holiday this year", "missing the holiday"),
            ("I had to borrow money from my parents", "borrowing from your parents"),
        ),
        "angry": (
            ("the bank charged me a huge fee", "the bank fee"),
            ("my landlord kept my deposit", "the deposit"),
            ("my friend never paid me back", "the unpaid loan"),
            ("a scammer took money from my account", "the scam"),
        ),
        "fearful": (
            ("I might not make rent this month", "the rent"),
            ("I have a huge medical bill", "the medical bill"),
            ("my company might cut my pay", "the pay cut"),
            ("I might lose my house to debt", "the debt"),
        ),
        "surprised": (
            ("I found cash in an old jacket", "the found cash"),
            ("my tax refund was twice as big", "the tax refund"),
            ("a stranger paid for my coffee", "the free coffee"),
            ("I won a small lottery prize", "the lottery prize"),
        ),
    },
    "friends": {
        "neutral": (
            ("I am meeting a friend for lunch", "the lunch"),
            ("I need to text my friend back", "the text"),
            ("we are watching a movie tonight", "the movie night"),
            ("I am helping a friend move on Saturday", "the moving day"),
        ),
        "happy": (
            ("my best friend is moving back to town", "your friend coming back"),
            ("we planned a weekend at the lake", "the lake weekend"),
            ("my friends threw me a birthday party", "the birthday party"),
            ("I made a new friend at the gym", "your new friend"),
        ),
        "sad": (
            ("my best friend moved away", "your friend moving away"),
            ("I was not invited to the wedding", "being left out"),
            ("my friends have been ignoring me", "being ignored"),
            ("my oldest friendship seems to be fading", "the fading friendship"),
        ),
        "angry": (
            ("my friend told everyone my secret", "your secret getting out"),
            ("my roommate ate all my food again", "your roommate"),
            ("my friend cancelled on me again", "the cancelled plans"),
            ("my friend laughed at me in public", "the public teasing"),
        ),
        "fearful": (
            ("my friend has stopped answering calls", "your friend's silence"),
            ("I have to meet new people tonight", "meeting new people"),
            ("I think my friends are angry at me", "the tension with your friends"),
            ("I have to tell my friend a hard truth", "the hard talk"),
        ),
        "surprised": (
            ("my old friend showed up at my door", "the surprise visit"),
            ("my quiet friend is starting a band", "the new band"),
            ("my friends are getting married next month", "the wedding"),
            ("my friend from college just became famous", "your famous friend"),
        ),
    },
}

# In DOMAINS order: the first eight, then topics_more.py's twelve.
TOPICS: dict[str, dict[str, tuple[Topic, ...]]] = {**_FIRST_EIGHT, **MORE_TOPICS}
