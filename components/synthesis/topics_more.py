"""Topics for the twelve domains added after the first eight; topics.py merges them into TOPICS.

Same rules as topics.py: (clause, subject) pairs, the clause first person and lower case in 4-9 words, the
subject a singular noun phrase that is unique within its domain so a reply can be traced to the user's words.
"""

from __future__ import annotations

MORE_TOPICS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "relationships": {
        "neutral": (
            ("my partner and I are cooking dinner tonight", "the dinner plan"),
            ("I have a first date on Friday", "the first date"),
            ("we are looking at apartments this weekend", "the apartment search"),
            ("my boyfriend starts a new job tomorrow", "his new job"),
        ),
        "happy": (
            ("my partner just asked me to marry him", "the proposal"),
            ("we celebrated five years together today", "your anniversary"),
            ("my crush asked me out today", "the date with your crush"),
            ("we just moved in together", "moving in together"),
        ),
        "sad": (
            ("my girlfriend broke up with me", "the breakup"),
            ("my husband and I keep growing apart", "the growing distance"),
            ("I miss my partner who lives abroad", "the long distance"),
            ("my date never showed up last night", "the missed date"),
        ),
        "angry": (
            ("my partner forgot our anniversary again", "the forgotten anniversary"),
            ("my boyfriend read my messages without asking", "the snooping"),
            ("my partner never helps with the housework", "the housework"),
            ("my ex keeps texting me at night", "your ex texting"),
        ),
        "fearful": (
            ("I think my partner wants to leave", "the possible split"),
            ("I am meeting her parents tomorrow", "meeting her parents"),
            ("I want to tell him how I feel", "the confession"),
            ("my partner is driving home through the snow", "the drive home"),
        ),
        "surprised": (
            ("my ex just invited me to her wedding", "the wedding invitation"),
            ("my partner planned a secret weekend away", "the secret getaway"),
            ("my boyfriend learned to cook for me", "the home cooked meal"),
            ("my high school crush messaged me today", "the message from your crush"),
        ),
    },
    "home": {
        "neutral": (
            ("I need to fix the kitchen sink", "the kitchen sink"),
            ("the plumber is coming on Wednesday", "the plumber visit"),
            ("I am repainting the living room", "the living room"),
            ("I have to clean out the garage", "the garage"),
        ),
        "happy": (
            ("we finally bought our first house", "your first house"),
            ("I finished decorating my new bedroom", "the new bedroom"),
            ("our new couch looks perfect in here", "the new couch"),
            ("my garden is finally in full bloom", "the garden"),
        ),
        "sad": (
            ("I have to move out of my home", "moving out"),
            ("a fire damaged our kitchen last night", "the fire"),
            ("my house feels so empty now", "the empty house"),
            ("we had to sell the family farm", "selling the farm"),
        ),
        "angry": (
            ("my landlord still has not fixed the heating", "the broken heating"),
            ("the roof is leaking again", "the leaking roof"),
            ("the repairman broke my window", "the broken window"),
            ("my roommate never cleans the bathroom", "the dirty bathroom"),
        ),
        "fearful": (
            ("I heard someone downstairs last night", "the noise downstairs"),
            ("our rent is going up next month", "the rent increase"),
            ("there is a crack in our ceiling", "the cracked ceiling"),
            ("we might get evicted next month", "the eviction"),
        ),
        "surprised": (
            ("I found a hidden room in my house", "the hidden room"),
            ("the old owners left us a piano", "the piano"),
            ("my house value doubled in a year", "the house value"),
            ("my kids cleaned the whole house", "the clean house"),
        ),
    },
    "pets": {
        "neutral": (
            ("I need to walk the dog soon", "the dog walk"),
            ("my cat has a vet visit today", "the vet visit"),
            ("I am buying food for the fish", "the fish food"),
            ("I am cleaning the hamster cage tonight", "the hamster cage"),
        ),
        "happy": (
            ("we just adopted a new puppy", "the new puppy"),
            ("my old dog learned a new trick", "the new trick"),
            ("my cat finally likes the new kitten", "the new kitten"),
            ("our rescue dog is finally trusting us", "your rescue dog"),
        ),
        "sad": (
            ("my cat ran away last week", "your missing cat"),
            ("my old dog is getting very weak", "your old dog"),
            ("I had to give my rabbit away", "giving up your rabbit"),
            ("my parrot died this morning", "losing your parrot"),
        ),
        "angry": (
            ("the vet charged me for nothing", "the vet bill"),
            ("the groomer cut my dog's ear", "the groomer"),
            ("someone let my dog out of the yard", "the open gate"),
            ("the pet store sold me a sick fish", "the sick fish"),
        ),
        "fearful": (
            ("my dog swallowed a sock", "the swallowed sock"),
            ("my cat has not eaten in days", "your cat's appetite"),
            ("my puppy needs surgery tomorrow", "the puppy's surgery"),
            ("my dog is lost in the woods", "the search for your dog"),
        ),
        "surprised": (
            ("my cat just had five kittens", "the litter"),
            ("a stray dog followed me home", "the stray dog"),
            ("my parrot said my name today", "the talking parrot"),
            ("my dog opened the fridge by himself", "the clever dog"),
        ),
    },
    "sports": {
        "neutral": (
            ("I have soccer practice at five", "soccer practice"),
            ("the game starts at eight tonight", "the game"),
            ("I am joining a running club", "the running club"),
            ("I need new shoes for the gym", "the gym shoes"),
        ),
        "happy": (
            ("our team won the championship", "the championship"),
            ("I finished my first marathon", "the marathon"),
            ("I scored the winning goal today", "the winning goal"),
            ("I finally beat my best time", "your best time"),
        ),
        "sad": (
            ("our team lost in the final", "the lost final"),
            ("I got cut from the team", "being cut"),
            ("I hurt my ankle before the big race", "the injured ankle"),
            ("my favorite player is retiring", "the retirement"),
        ),
        "angry": (
            ("the referee made a terrible call", "the bad call"),
            ("my coach benched me for no reason", "the benching"),
            ("the other team cheated the whole game", "the cheating"),
            ("someone stole my bike at the gym", "the stolen bike"),
        ),
        "fearful": (
            ("I have my first big race tomorrow", "the big race"),
            ("I have tryouts for the team tomorrow", "the tryout"),
            ("I have to dive from the high board", "the high dive"),
            ("my knee hurts before the final match", "your knee"),
        ),
        "surprised": (
            ("the underdog team just won the cup", "the upset win"),
            ("I was picked as team captain", "being named captain"),
            ("a famous player signed my shirt", "the signed shirt"),
            ("I hit a hole in one today", "the hole in one"),
        ),
    },
    "food": {
        "neutral": (
            ("I am cooking pasta for dinner", "the pasta"),
            ("I need to buy eggs and bread", "the shopping list"),
            ("we are ordering pizza tonight", "the pizza order"),
            ("I am trying a new soup recipe", "the soup recipe"),
        ),
        "happy": (
            ("my first loaf of bread came out perfect", "your first loaf"),
            ("we got a table at the best restaurant", "the restaurant table"),
            ("my grandmother taught me her cake recipe", "the family recipe"),
            ("I won the office chili contest", "the chili contest"),
        ),
        "sad": (
            ("my favorite bakery closed for good", "the closed bakery"),
            ("I burned the dinner for my guests", "the burned dinner"),
            ("I cannot eat sugar anymore", "giving up sugar"),
            ("I eat dinner alone every night", "eating alone"),
        ),
        "angry": (
            ("the restaurant got my order wrong again", "the wrong order"),
            ("the waiter spilled soup on my shirt", "the spilled soup"),
            ("someone ate the cake I was saving", "the missing cake"),
            ("the delivery took two hours to arrive", "the slow delivery"),
        ),
        "fearful": (
            ("I am cooking for my in-laws tonight", "cooking for your in-laws"),
            ("I think I ate something bad", "the bad meal"),
            ("I might be allergic to peanuts", "the peanut allergy"),
            ("the health inspector visits my cafe tomorrow", "the inspection"),
        ),
        "surprised": (
            ("the chef sent us a free dessert", "the free dessert"),
            ("my picky son ate all his vegetables", "the empty plate"),
            ("my cake won first prize at the fair", "the prize cake"),
            ("the tiny diner makes amazing sushi", "the sushi"),
        ),
    },
    "technology": {
        "neutral": (
            ("I need to update my phone", "the phone update"),
            ("I am setting up a new printer", "the printer"),
            ("I am backing up my photos tonight", "the backup"),
            ("I have to reset my email password", "the password reset"),
        ),
        "happy": (
            ("my new phone arrived this morning", "the new phone"),
            ("I finally built my own computer", "your new computer"),
            ("my app got its first thousand users", "your app"),
            ("I fixed my laptop all by myself", "the laptop fix"),
        ),
        "sad": (
            ("I lost all my photos in a crash", "losing your photos"),
            ("my old computer finally died", "your old computer"),
            ("my favorite game is shutting down", "the game shutting down"),
            ("I dropped my phone in the lake", "the drowned phone"),
        ),
        "angry": (
            ("my laptop crashed and deleted my essay", "the deleted essay"),
            ("the internet has been down all day", "the internet outage"),
            ("the update broke my phone again", "the broken update"),
            ("customer support hung up on me twice", "the support call"),
        ),
        "fearful": (
            ("I think my account got hacked", "the hacked account"),
            ("my laptop is making a strange noise", "the strange noise"),
            ("I clicked a link that looked like a scam", "the suspicious link"),
            ("my thesis is saved on only one drive", "the single copy"),
        ),
        "surprised": (
            ("my old phone still works after ten years", "your old phone"),
            ("the robot vacuum cleaned the whole house", "the robot vacuum"),
            ("my grandfather just started a video blog", "your grandfather's blog"),
            ("my broken laptop turned back on", "the revived laptop"),
        ),
    },
    "weather": {
        "neutral": (
            ("it is supposed to rain tomorrow", "the rain"),
            ("I need to check the forecast", "the forecast"),
            ("it is getting colder this week", "the cold spell"),
            ("I am bringing an umbrella just in case", "the umbrella"),
        ),
        "happy": (
            ("the sun finally came out today", "the sunshine"),
            ("it snowed enough for a snow day", "the snow day"),
            ("our weekend will be warm and sunny", "the sunny weekend"),
            ("I saw a double rainbow this morning", "the double rainbow"),
        ),
        "sad": (
            ("it has rained every day this month", "the endless rain"),
            ("the storm destroyed my garden", "the ruined garden"),
            ("the gray winter makes me feel low", "the gray winter"),
            ("the rain ruined our wedding photos", "the spoiled wedding"),
        ),
        "angry": (
            ("the forecast said sunny and it poured", "the wrong forecast"),
            ("the snow plow buried my car again", "the buried car"),
            ("the heat wave broke my air conditioner", "the broken air conditioner"),
            ("the wind knocked over my fence again", "the fallen fence"),
        ),
        "fearful": (
            ("a hurricane is heading our way", "the hurricane"),
            ("there is a flood warning for my street", "the flood warning"),
            ("the thunder is so loud right now", "the thunderstorm"),
            ("I have to drive through heavy snow", "the snowy drive"),
        ),
        "surprised": (
            ("it snowed in the middle of summer", "the summer snow"),
            ("hail the size of golf balls hit my car", "the giant hail"),
            ("it is warm enough to swim in winter", "the warm winter"),
            ("the storm passed us without a single drop", "the dry storm"),
        ),
    },
    "hobbies": {
        "neutral": (
            ("I am starting a knitting class", "the knitting class"),
            ("I need new strings for my guitar", "restringing your guitar"),
            ("I am planting tomatoes this weekend", "the tomato planting"),
            ("my chess club meets on Thursday", "the chess club"),
        ),
        "happy": (
            ("I finished my first painting", "your first painting"),
            ("I played my first song on guitar", "your first song"),
            ("my quilt won a ribbon at the fair", "the quilt"),
            ("I finally solved the giant puzzle", "the giant puzzle"),
        ),
        "sad": (
            ("my hands hurt too much to knit", "giving up knitting"),
            ("my photography club just shut down", "the club closing"),
            ("nobody came to my art show", "the empty art show"),
            ("my tomato plants all died", "the lost harvest"),
        ),
        "angry": (
            ("someone broke my model ship", "the broken model ship"),
            ("the craft store sold me dried paint", "the dried paint"),
            ("my brother erased my saved game", "the erased game"),
            ("my dog chewed up my puzzle pieces", "the chewed puzzle"),
        ),
        "fearful": (
            ("I am playing guitar on stage tonight", "the performance"),
            ("my first pottery show is this weekend", "the pottery show"),
            ("I am entering a chess tournament", "the chess tournament"),
            ("I am singing solo in the choir", "the solo"),
        ),
        "surprised": (
            ("a gallery wants to show my paintings", "the gallery offer"),
            ("I found a rare coin in my change", "the rare coin"),
            ("my garden grew a giant pumpkin", "the giant pumpkin"),
            ("a famous author liked my poem", "your poem"),
        ),
    },
    "entertainment": {
        "neutral": (
            ("I am watching a new series tonight", "the new series"),
            ("I am going to a comedy show Saturday", "the comedy show"),
            ("I am reading a mystery novel", "the mystery novel"),
            ("we are going to the theater Friday", "the theater trip"),
        ),
        "happy": (
            ("I got front row seats for the show", "the front row"),
            ("my favorite band released a new album", "the new album"),
            ("I met my favorite actor today", "meeting your favorite actor"),
            ("the sequel was even better than the first", "the sequel"),
        ),
        "sad": (
            ("my favorite show got cancelled", "the cancelled show"),
            ("the concert sold out before I could buy", "the sold out concert"),
            ("my favorite singer passed away", "losing your favorite singer"),
            ("the book series I love just ended", "the end of the series"),
        ),
        "angry": (
            ("someone spoiled the ending of my show", "the spoiled ending"),
            ("the people behind me talked through the movie", "the noisy movie"),
            ("the streaming service raised its price again", "the price hike"),
            ("the concert was cancelled an hour before", "the cancelled concert"),
        ),
        "fearful": (
            ("I am auditioning for a play tomorrow", "the audition"),
            ("I have to sing karaoke in front of everyone", "the karaoke"),
            ("I am going to a haunted house tonight", "the haunted house"),
            ("I am performing stand up comedy tonight", "the stand up set"),
        ),
        "surprised": (
            ("I won free tickets from the radio", "the radio tickets"),
            ("my friend is an extra in the movie", "your friend's cameo"),
            ("the quiet librarian wrote a best seller", "the best seller"),
            ("the movie had a twist I never expected", "the twist"),
        ),
    },
    "commute": {
        "neutral": (
            ("my bus leaves at seven", "the bus"),
            ("I am biking to work tomorrow", "the bike ride"),
            ("I need to refill my transit card", "the transit card"),
            ("I am carpooling with a coworker this week", "the carpool"),
        ),
        "happy": (
            ("I got a seat on the train", "the seat"),
            ("the new bike lane opened today", "the new bike lane"),
            ("I made it to work in ten minutes", "the quick commute"),
            ("my new route skips all the traffic", "the new route"),
        ),
        "sad": (
            ("I spend three hours a day commuting", "the long commute"),
            ("my car broke down for good", "losing your car"),
            ("traffic made me miss my son's play", "the missed play"),
            ("I ride the empty bus home alone", "the lonely ride"),
        ),
        "angry": (
            ("the train was late again today", "the late train"),
            ("someone cut me off on the highway", "the reckless driver"),
            ("the bus drove right past me", "the missed bus"),
            ("I got a parking ticket for nothing", "the parking ticket"),
        ),
        "fearful": (
            ("the roads are icy this morning", "the icy drive"),
            ("I have to drive on the highway alone", "the highway drive"),
            ("I am stuck in traffic before my interview", "getting to your interview"),
            ("my brakes are making a scary sound", "the brake noise"),
        ),
        "surprised": (
            ("the subway was completely empty today", "the empty subway"),
            ("a stranger gave me a ride to work", "the free ride"),
            ("my bus driver knew my name today", "the friendly driver"),
            ("I found money on my train seat", "the found money"),
        ),
    },
    "neighbors": {
        "neutral": (
            ("my neighbor is borrowing my ladder", "the ladder"),
            ("I need to sign the street petition", "the petition"),
            ("a new family is moving in next door", "the family next door"),
            ("our block party is on Sunday", "the block party"),
        ),
        "happy": (
            ("my neighbor brought me fresh cookies", "the plate of cookies"),
            ("my neighbors helped me fix my fence", "the fence repair"),
            ("the noisy neighbor finally moved away", "the quiet street"),
            ("our street won the garden contest", "the garden contest"),
        ),
        "sad": (
            ("my kind old neighbor passed away", "losing your neighbor"),
            ("nobody on my street says hello", "the unfriendly street"),
            ("my neighbor and I had a falling out", "the falling out"),
            ("my neighbor is moving to another country", "your neighbor moving"),
        ),
        "angry": (
            ("my neighbor plays loud music every night", "the loud music"),
            ("my neighbor parks in my spot again", "the parking spot"),
            ("someone keeps leaving trash on my lawn", "the trash"),
            ("my neighbor cut down my apple tree", "the apple tree"),
        ),
        "fearful": (
            ("there was a break in next door", "the break in"),
            ("a strange man keeps watching our house", "the stranger"),
            ("my neighbor's dog tried to bite me", "the dog next door"),
            ("I have to complain to my neighbor", "the complaint"),
        ),
        "surprised": (
            ("my neighbor turns out to be famous", "the famous neighbor"),
            ("my neighbor built a pool overnight", "the new pool"),
            ("the grumpy neighbor invited us to dinner", "the dinner invitation"),
            ("my new neighbor is my old teacher", "the reunion"),
        ),
    },
    "bureaucracy": {
        "neutral": (
            ("I need to renew my driver's license", "the license renewal"),
            ("I am filling out my tax return", "the tax return"),
            ("I have to register my new address", "the address change"),
            ("I have an appointment at city hall", "the city hall visit"),
        ),
        "happy": (
            ("my work permit was finally approved", "the work permit"),
            ("I passed my driving test today", "the driving test"),
            ("I got my citizenship at last", "your citizenship"),
            ("the permit for my shop came through", "the shop permit"),
        ),
        "sad": (
            ("my residence permit was denied", "the denied permit"),
            ("I cannot get a visa to see my mother", "the refused visa"),
            ("I lost my benefits because of a typo", "losing your benefits"),
            ("my grant application was rejected", "the rejected grant"),
        ),
        "angry": (
            ("I waited in line for five hours", "the endless line"),
            ("they lost my application for the third time", "the lost application"),
            ("the office closed right when I arrived", "the closed office"),
            ("I was fined for a form I never got", "the unfair fine"),
        ),
        "fearful": (
            ("I have a tax audit next week", "the audit"),
            ("my visa expires in two weeks", "the expiring visa"),
            ("I got a letter from the court", "the court letter"),
            ("I have my immigration interview tomorrow", "the immigration interview"),
        ),
        "surprised": (
            ("my passport came back in one day", "the fast passport"),
            ("the tax office sent me a refund", "the surprise refund"),
            ("the clerk fixed everything in five minutes", "the helpful clerk"),
            ("my parking fine was cancelled", "the cancelled fine"),
        ),
    },
}
